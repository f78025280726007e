// Package textstats computes evaluation statistics over texts the user is
// allowed to see: length distributions, distinct-n diversity (Li et al.
// 2016) and a leakage check of synthetic texts against real ones (exact
// copies and long shared token runs). It also measures spelling against a
// word list (the share of texts and words a list such as Debian's
// wamerican-large knows) and the share of texts matching a crude,
// documented harmful-request word screen (HarmfulTerms).
//
// # Privacy
//
// These functions read real texts, so their results are for the data
// owner's own evaluation and are not differentially private: a Leakage
// report says which synthetic text copies which real one. Reports carry
// indices, counts and lengths only, never text, and no function logs its
// input or puts any of it in an error.
//
// Everything is deterministic: the same inputs give the same results
// whatever the map iteration order.
package textstats
