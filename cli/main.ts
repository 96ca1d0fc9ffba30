// The `gatewayctl` process (package.json "bin", through cli/gatewayctl.js): the real streams and
// environment handed to run(), its answer as the exit status.
import { run } from "./run.js";

// A reader that stops early (`gatewayctl devices list --all | head`) is not an error of ours.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

// exitCode rather than exit(): a large JSON answer written to a pipe is flushed before the process ends.
process.exitCode = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
