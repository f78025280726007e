// Writes the golden encodings that TestHFGoldens compares LoadHF against:
// for every real tokenizer under ../shared/models/tokenizers, the ids that
// HF's JavaScript tokenizers (npm @huggingface/transformers) give for the
// texts named in hf_texts.json (public prompts, taken by file and count,
// plus hand-written edge cases) and the random strings of
// hf_random_texts.json. Only ids and hashes are written, never a
// public text: each line is
//
//   {"i": index, "src": "file:line" | "edge:k", "sha256": hex of the text,
//    "ids": [...], "decode_sha256": hex of HF's decode of ids, "rt": decode == text}
//
// and, for edge cases only (hand-written, so committable), "decode".
//
//   mkdir -p /tmp/hfjs && (cd /tmp/hfjs && npm init -y && npm install --ignore-scripts @huggingface/transformers)
//   node models/tokenizer/testdata/hf_goldens.mjs ../shared/models/tokenizers ../shared/data/public models/tokenizer/testdata/hf
//
// The package is resolved from $HF_TRANSFORMERS_DIR (default /tmp/hfjs),
// so nothing is installed in the repository. Qwen2.5 ships vocab.json +
// merges.txt only; it is given to transformers.js as the tokenizer.json
// that HF's Python converter (Qwen2TokenizerFast) builds from them.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync, copyFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";

const [tokDir, dataDir, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: node hf_goldens.mjs <tokenizers dir> <public data dir> <out dir>");
  process.exit(2);
}
const base = process.env.HF_TRANSFORMERS_DIR || "/tmp/hfjs";
const require = createRequire(path.join(base, "package.json"));
const entry = require.resolve("@huggingface/transformers");
const { AutoTokenizer, env } = await import(pathToFileURL(entry).href);
const here = path.dirname(new URL(import.meta.url).pathname);

const sha = (s) => createHash("sha256").update(s, "utf8").digest("hex");

// Texts: the first `count` lines with a string "text" of each source file,
// in hf_texts.json order, then the edge cases.
const spec = JSON.parse(readFileSync(path.join(here, "hf_texts.json"), "utf8"));
const texts = [];
for (const { file, count } of spec.sources) {
  const lines = readFileSync(path.join(dataDir, file), "utf8").split("\n");
  let n = 0;
  for (let ln = 0; ln < lines.length && n < count; ln++) {
    if (lines[ln].trim() === "") continue;
    const rec = JSON.parse(lines[ln]);
    if (typeof rec.text !== "string") continue;
    texts.push({ src: `${file}:${ln + 1}`, text: rec.text, edge: false });
    n++;
  }
}
spec.edge.forEach((t, k) => texts.push({ src: `edge:${k}`, text: t, edge: true }));
// Random strings over a hostile alphabet (contractions in both cases,
// every kind of space, digits, CJK, emoji, combining marks, added tokens),
// made once and kept as they are: they are not public data.
JSON.parse(readFileSync(path.join(here, "hf_random_texts.json"), "utf8"))
  .forEach((t, k) => texts.push({ src: `random:${k}`, text: t, edge: false }));

// A staging directory for from_pretrained: the real files, and for a
// vocab.json + merges.txt tokenizer the converted tokenizer.json.
const stage = mkdtempSync(path.join(os.tmpdir(), "hfgold-"));
env.allowRemoteModels = false;
env.localModelPath = stage;

function qwen2JSON(dir) {
  const cfg = JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const vocab = JSON.parse(readFileSync(path.join(dir, "vocab.json"), "utf8"));
  const merges = readFileSync(path.join(dir, "merges.txt"), "utf8").split("\n")
    .filter((l) => l !== "" && !l.startsWith("#version"));
  const added = Object.entries(cfg.added_tokens_decoder || {}).map(([id, t]) => ({
    id: Number(id), content: t.content, single_word: t.single_word, lstrip: t.lstrip,
    rstrip: t.rstrip, normalized: t.normalized, special: t.special,
  }));
  return {
    version: "1.0", truncation: null, padding: null, added_tokens: added,
    normalizer: { type: "NFC" },
    pre_tokenizer: {
      type: "Sequence", pretokenizers: [
        { type: "Split", pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

mkdirSync(outDir, { recursive: true });
for (const name of readdirSync(tokDir).sort()) {
  const src = path.join(tokDir, name);
  const dst = path.join(stage, name);
  mkdirSync(dst, { recursive: true });
  for (const f of ["tokenizer.json", "tokenizer_config.json", "config.json", "special_tokens_map.json"]) {
    if (existsSync(path.join(src, f))) copyFileSync(path.join(src, f), path.join(dst, f));
  }
  if (!existsSync(path.join(src, "tokenizer.json"))) {
    writeFileSync(path.join(dst, "tokenizer.json"), JSON.stringify(qwen2JSON(src)));
  }
  const tok = await AutoTokenizer.from_pretrained(name, { local_files_only: true });
  const out = [];
  let rt = 0;
  texts.forEach(({ src: s, text, edge }, i) => {
    const ids = Array.from(tok.encode(text, { add_special_tokens: false }));
    const dec = ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    const line = { i, src: s, sha256: sha(text), ids, decode_sha256: sha(dec), rt: dec === text };
    if (edge) line.decode = dec;
    if (line.rt) rt++;
    out.push(JSON.stringify(line));
  });
  const file = path.join(outDir, `${name}.jsonl.gz`);
  writeFileSync(file, gzipSync(out.join("\n") + "\n", { level: 9 }));
  console.log(`${name}: ${texts.length} texts, ${rt} round-trip, -> ${file}`);
}
rmSync(stage, { recursive: true, force: true });
