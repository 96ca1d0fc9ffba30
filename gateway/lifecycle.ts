/** Everything that holds a connection, a socket or a timer has a start and a stop. */
export interface Lifecycle {
  start(): Promise<void>;
  stop(): Promise<void>;
}
