// The usage text of `gatewayctl` (docs/admin-api.md, "The command-line client").
export const USAGE = `usage: gatewayctl devices <command> [options]

  devices list [--transport http[,shadow]] [--prefix P] [--online true|false] [--limit N] [--cursor C] [--all]
  devices get ID
  devices set ID field=value... (value null removes an optional field)
  devices cutover ID... [--to xmpp|http|shadow] [--dry-run]
  devices cutover --transport T [--prefix P] [--online true|false] [--limit N] [--to xmpp] [--dry-run]
  devices wave start --percent N [--prefix P] [--online true|false] | ID...
                     [--window 10m] [--max-error-increase 0.05] [--min-requests 20] [--dry-run]
  devices wave list
  devices wave get ID [--watch [--interval 1s]]
  devices wave rollback ID
  devices status

options for every command:
  --url URL   the gateway (default: GATEWAY_URL, else http://localhost:8080)
  --json      the API's JSON instead of a table
  -h, --help  this text

The admin token comes from GATEWAY_ADMIN_TOKEN, or from the file named by GATEWAY_ADMIN_TOKEN_FILE;
never from the command line, which every user of the machine can see.
Exit status: 0 done, 1 the gateway refused or failed (its error code printed), 2 a usage error.
`;
