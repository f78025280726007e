// Package hashmix holds the bit mixer the feature hashers share: the
// lexical embedding's n-gram buckets and the leakage finder's token-window
// hashes both run FNV-1a and then this finaliser.
package hashmix

// Mix64 is the splitmix64 finaliser: FNV-1a alone spreads short inputs
// poorly over the high bits that bucketing uses.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
