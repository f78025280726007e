// Package embed maps instruction texts to fixed-size float32 vectors for
// the resampling step: the synthetic pool is clustered on these vectors and
// each private record votes, in a DP histogram, for its nearest cluster.
//
// # Lexical
//
// Lexical is a hashed bag of word n-grams (default 1-2) and character
// n-grams (default 3-5, taken inside each word with its boundaries marked
// as "<word>", like fastText and scikit-learn's char_wb). Text is
// lowercased (unicode.ToLower) and split on every rune that is not a
// letter, number or combining mark; invalid UTF-8 bytes are separators.
// Features are hashed into Buckets with a seeded 64-bit hash (FNV-1a over
// runes plus a splitmix64 finaliser; it is not hash/maphash because that
// is seeded per process and the vectors must be reproducible), weighted by
// sublinear TF (1 + ln tf) times IDF, L2-normalised, projected to Dim with
// a sparse Johnson-Lindenstrauss projection and L2-normalised again.
//
// The projection gives every bucket exactly ceil(sqrt(Dim)) entries of
// random sign at random output positions (drawn with replacement), all
// generated on the fly from a seeded hash of the bucket id, so no
// Buckets x Dim matrix is stored. This is the "sparse JL" variant of the
// very sparse random projections of Li, Hastie & Church (2006): Li's
// s = sqrt(Buckets) would leave most of a short text's features with no
// non-zero entry at Dim 256, whereas a fixed count keeps every feature
// in the output and inner products are still preserved in expectation.
//
// Everything is deterministic given the options (Seed included): the same
// text gives bit-identical vectors whatever the batch, the Workers count or
// the process. A text with no letters or digits embeds to the zero vector.
//
// # Privacy
//
// The histogram vote is sensitivity 1 only if one private record's
// embedding depends on that record alone. So Embed is a per-text function:
// nothing about one text of a batch influences another's vector, and Embed
// keeps no state between calls. The only fitted state is the IDF table,
// and Fit must be given public or synthetic texts only, never private
// records: IDF fitted on private texts would make every embedding depend
// on all of them (and the table itself would leak their vocabulary).
//
// Neither the texts nor any part of them is ever logged or put in an
// error; errors give counts and indices only.
package embed
