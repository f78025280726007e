// Checks that HF's tokenizers.js, reading a tokenizer.json written by this
// package, encodes and decodes exactly as the Go code does.
//
//   DPINSTRUCT_HF_COMPAT_OUT=/tmp/hfc go test -run TestWriteHFCompatCases ./models/tokenizer/
//   cd /tmp/hfjs && npm install @huggingface/tokenizers   # once, outside the repo
//   node models/tokenizer/testdata/hf_compat.mjs /tmp/hfc
//
// The package is resolved from $HF_TOKENIZERS_DIR (default /tmp/hfjs), so
// nothing is installed in the repository. Exit status 0 when every case
// matches.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node hf_compat.mjs <dir with tokenizer.json and cases.jsonl>");
  process.exit(2);
}
const base = process.env.HF_TOKENIZERS_DIR || "/tmp/hfjs";
const require = createRequire(path.join(base, "package.json"));
const entry = require.resolve("@huggingface/tokenizers").replace(/\.cjs$/, ".mjs");
const { Tokenizer } = await import(pathToFileURL(entry).href);

const json = JSON.parse(readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const tok = new Tokenizer(json, {});
const cases = readFileSync(path.join(dir, "cases.jsonl"), "utf8")
  .split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));

let bad = 0;
for (const c of cases) {
  const ids = Array.from(tok.encode(c.text, { add_special_tokens: false }).ids);
  const same = ids.length === c.ids.length && ids.every((v, i) => v === c.ids[i]);
  const dec = c.ids.length === 0 ? "" : tok.decode(c.ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  if (!same || dec !== c.text) {
    bad++;
    if (bad <= 10) {
      console.log("MISMATCH", JSON.stringify(c.text.slice(0, 80)));
      if (!same) console.log("  go:", JSON.stringify(c.ids.slice(0, 40)), "\n  hf:", JSON.stringify(ids.slice(0, 40)));
      if (dec !== c.text) console.log("  decode:", JSON.stringify(dec.slice(0, 80)));
    }
  }
}
const eos = tok.encode("<|endoftext|>", { add_special_tokens: false }).ids;
console.log(`${cases.length - bad} passed, ${bad} failed`);
console.log(`(HF maps the literal "<|endoftext|>" to the special id(s) ${JSON.stringify(Array.from(eos))}; Go's Encode never produces specials)`);
process.exit(bad === 0 ? 0 : 1);
