// What the local stack's XMPP servers (Prosody, ejabberd) offer alike, so tests, the demo and the bench can
// use either.

export interface ComponentSpec {
  domain: string;
  secret: string;
  /** What Prosody does when a second connection claims the domain (Prosody's default: kick_new). */
  conflictResolve?: "kick_new" | "kick_old";
}

export interface XmppUser {
  /** Localpart only ("dev1"); servers store it lower-cased. */
  username: string;
  password: string;
}

export interface XmppServer {
  readonly c2sPort: number;
  readonly componentPort: number;
  readonly dir: string;
  /** The rendered configuration (from the template under deploy/). */
  readonly configPath: string;
  readonly vhost: string;
  readonly components: readonly ComponentSpec[];
  /** xmpp://127.0.0.1:C2S, for @xmpp/client. */
  readonly service: string;
  /** xmpp://127.0.0.1:COMP, for @xmpp/component. */
  readonly componentService: string;
  /** PID of the server process itself (changes on restart). */
  readonly pid: number;
  /** Creates the accounts not created before by this handle, in one batch, then checks they exist. */
  createUsers(users: readonly XmppUser[]): Promise<void>;
  /** Bare JIDs of all accounts on the vhost. */
  listUsers(): Promise<string[]>;
  /** Stops it and removes its dir. */
  stop(): Promise<void>;
  /** Stops it if running and starts it again with the same config, ports and accounts. */
  restart(): Promise<void>;
  /** SIGKILL, like a crash; restart() or stop() afterwards. */
  kill(): Promise<void>;
  /** The last part of its log, for failure messages. */
  logTail(maxBytes?: number): Promise<string>;
}
