// The metric and label names a PromQL expression refers to, so that the dashboard's and the alerts'
// queries can be held against what a gateway exposes.

const AGGREGATIONS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
]);
const GROUPING = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const KEYWORDS = new Set([...GROUPING, "bool", "and", "or", "unless", "offset", "atan2"]);

export interface References {
  selectors: Array<{ name: string; labels: string[] }>;
  grouping: string[];
}

/** The metric names and label names a PromQL expression refers to (enough for the queries shipped here). */
export function references(expr: string): References {
  const selectors: Array<{ name: string; labels: string[] }> = [];
  const grouping: string[] = [];
  const s = expr;
  let i = 0;
  const skipString = () => {
    const quote = s[i];
    for (i++; i < s.length && s[i] !== quote; i++) if (s[i] === "\\") i++;
    i++;
  };
  const skipSpace = () => {
    while (i < s.length && /\s/.test(s[i] as string)) i++;
  };
  /** The label names of the matchers in the braces at i; i ends after the closing brace. */
  const matchers = (): string[] => {
    let body = "";
    for (i++; i < s.length && s[i] !== "}";) {
      if (s[i] === '"' || s[i] === "'" || s[i] === "`") skipString();
      else body += s[i++];
    }
    i++;
    return [...body.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1] as string);
  };
  while (i < s.length) {
    const c = s[i] as string;
    if (c === '"' || c === "'" || c === "`") skipString();
    else if (c === "{") selectors.push({ name: "", labels: matchers() });
    else if (c === "[") i = s.indexOf("]", i) + 1;
    else if (/[0-9.]/.test(c)) while (i < s.length && /[\w.]/.test(s[i] as string)) i++;
    else if (/[A-Za-z_:]/.test(c)) {
      const word = /^[A-Za-z_:][\w:]*/.exec(s.slice(i))?.[0] as string;
      i += word.length;
      skipSpace();
      const next = /^(\(|[A-Za-z_]\w*)/.exec(s.slice(i))?.[1];
      if (GROUPING.has(word) && next === "(") {
        const close = s.indexOf(")", i);
        grouping.push(
          ...s
            .slice(i + 1, close)
            .split(",")
            .map((l) => l.trim())
            .filter((l) => l !== ""),
        );
        i = close + 1;
      } else if (KEYWORDS.has(word) || next === "(" || (AGGREGATIONS.has(word) && (next === "by" || next === "without"))) {
        // a function, an aggregation or an operator
      } else selectors.push({ name: word, labels: s[i] === "{" ? matchers() : [] });
    } else i++;
  }
  return { selectors, grouping };
}
