// Parse LogQL queries with Grafana's own grammar (@grafana/lezer-logql, the parser of
// Grafana's Loki query editor) and report syntax errors and stream-selector labels.
//
//   npm ci --prefix deploy/grafana/node          # once
//   echo '["{kind=\"view\"} | json"]' | node deploy/grafana/check_logql.mjs
//
// Input (stdin): a JSON array of query strings, Grafana variables already substituted.
// Output (stdout): a JSON array, one object per query:
//   {"query", "errors": [{"from", "to", "near"}], "selectors": [[{"label", "op", "value"}]]}
// Exit status: 0 when every query parsed, 1 when one did not, 2 when the parser is missing.
import { createRequire } from "node:module";

const require = createRequire(new URL("./node/package.json", import.meta.url));
let parser;
try {
  ({ parser } = require("@grafana/lezer-logql"));
} catch (error) {
  process.stderr.write(
    "@grafana/lezer-logql is not installed: run `npm ci --prefix deploy/grafana/node` " +
      `(${error.code ?? error.message})\n`,
  );
  process.exit(2);
}

function unquote(text) {
  if (text === undefined) return "";
  if (text.startsWith("`")) return text.slice(1, -1);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function check(query) {
  const tree = parser.parse(query);
  const errors = [];
  const selectors = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        errors.push({ from: node.from, to: node.to, near: query.slice(node.from, node.from + 30) });
      }
    },
  });
  tree.iterate({
    enter(node) {
      if (node.name === "Selector") {
        const matchers = [];
        const cursor = node.node.cursor();
        cursor.iterate((inner) => {
          if (inner.name !== "Matcher") return undefined;
          const parts = [];
          for (let child = inner.node.firstChild; child; child = child.nextSibling) {
            parts.push(query.slice(child.from, child.to));
          }
          const [label, op, value] = parts;
          matchers.push({ label, op, value: unquote(value) });
          return false;
        });
        selectors.push(matchers);
        return false;
      }
      return undefined;
    },
  });
  return { query, errors, selectors };
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const queries = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = queries.map(check);
process.stdout.write(JSON.stringify(results, null, 1) + "\n");
process.exit(results.every((r) => r.errors.length === 0) ? 0 : 1);
