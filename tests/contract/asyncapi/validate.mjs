// Validates AsyncAPI documents with the AsyncAPI Initiative's own parser (@asyncapi/parser: the AsyncAPI
// JSON Schema and its Spectral rules). Prints {"<file>": [{severity, code, message, path}, ...]} as JSON on
// stdout, severity as Spectral numbers it (0 error, 1 warning, 2 information, 3 hint); exits 1 when any
// document has an error. Several files in one run: node's start and the parser's load are most of the time.
//
//   node tests/contract/asyncapi/validate.mjs docs/events/asyncapi.json
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const ERROR = 0;
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate.mjs <asyncapi document>...");
  process.exit(2);
}
const parser = new Parser();
const report = {};
for (const file of files) {
  const diagnostics = await parser.validate(await readFile(file, "utf8"));
  report[file] = diagnostics.map(({ severity, code, message, path }) => ({ severity, code, message, path }));
}
console.log(JSON.stringify(report, null, 2));
// exitCode, not exit(): exit() would cut a long report short while it is still being written to a pipe.
process.exitCode = Object.values(report).some((found) => found.some((d) => d.severity === ERROR)) ? 1 : 0;
