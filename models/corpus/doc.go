// Package corpus reads PUBLIC text for pre-training the base generator (and
// for training its tokenizer).
//
// [Open] takes files or directories (walked recursively, in lexical order,
// so the order of texts is deterministic) and [Reader.Texts] iterates over
// the texts they hold:
//
//   - *.jsonl and *.jsonl.gz: one JSON object per line; the string field
//     "text" is one text. Blank lines and objects without a (non-empty)
//     "text" are skipped; a line that is not a JSON object is an error
//     naming the file and line.
//   - *.txt and *.txt.gz: one text per paragraph, a paragraph being a
//     maximal run of non-blank lines (a line holding only spaces/tabs is
//     blank). Lines keep their content, lose a trailing "\r", and are joined
//     with "\n". Paragraphs rather than lines, so that multi-line texts such
//     as poems or code keep their shape.
//
// Inside a directory, files with other names (LICENSE, README.md, ...) are
// ignored; a file named explicitly must have one of the suffixes above.
//
// Private data guard: the project's stand-in for PRIVATE user instructions
// is the Dolly data set (../shared/data/dolly). It must never be used for
// pre-training, so Open refuses (with an error wrapping [ErrPrivate]) any
// path with a directory element named "dolly", i.e. any path containing
// "/dolly/", checked both on the path as given (made absolute) and after
// resolving symbolic links, for every file found while walking.
//
// The shared data lives outside the repository, at ../shared/data from the
// repository root by default; tools and tests take its location from the
// environment variable DPINSTRUCT_DATA ([EnvDataDir]) and the public part
// is its "public" sub-directory ([PublicDir]).
package corpus
