// Reads a JSON array of Kubernetes objects on stdin; prints one JSON line per object of a known custom kind
// ({"kind", "name", "errors"}) and exits 1 when any is invalid or of a kind this bundle does not know.
"use strict";
const { models } = require("./crd-validators.cjs");

const byType = new Map(models.map((model) => [`${model.apiVersion}/${model.kind}`, model]));
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  let failed = false;
  for (const object of JSON.parse(input)) {
    const model = byType.get(`${object.apiVersion}/${object.kind}`);
    const name = (object.metadata || {}).name;
    if (model === undefined) {
      console.log(JSON.stringify({ kind: object.kind, name, errors: [`no schema for ${object.apiVersion} ${object.kind}`] }));
      failed = true;
      continue;
    }
    try {
      new model(object).validate();
      console.log(JSON.stringify({ kind: object.kind, name, errors: [] }));
    } catch (error) {
      console.log(JSON.stringify({ kind: object.kind, name, errors: [String(error.message)] }));
      failed = true;
    }
  }
  process.exit(failed ? 1 : 0);
});
