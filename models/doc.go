// Package models will hold everything that touches private records inside
// a window: the tokenizer and generator, DP-SGD and the privacy
// accountant, embeddings, the DP filter and evaluation. It never imports
// stream, sink or connector; the connector hands it windows and writes what
// it returns.
package models
