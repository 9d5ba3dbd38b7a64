// Package health implements the continuous health tests of NIST SP 800-90B
// §4.4 for one noise source: the Repetition Count Test (RCT, §4.4.1) and
// the Adaptive Proportion Test (APT, §4.4.2), each with an intermittent and
// a permanent cutoff. It is a leaf: it imports only the standard library.
//
// # Cutoffs
//
// With H the assessed min-entropy per sample (bits) and α = 2^-alphaLog2
// the false-positive probability:
//
//   - RCT (§4.4.1): C = 1 + ⌈alphaLog2 / H⌉. A run of C identical
//     consecutive samples fails on its C-th sample. The standard's example,
//     α = 2^-20 and H = 2, gives C = 11. See RCTCutoff for the float64
//     rounding it guards against (20/0.2 must give 101, not 102).
//   - APT (§4.4.2, footnote to Table 2): C = 1 + CRITBINOM(W, 2^-H, 1-α),
//     the smallest C with P[X ≥ C] ≤ α for X ~ Binomial(W, 2^-H), with
//     window W = 1024 for a binary source (SampleBits = 1) and 512
//     otherwise. APTCutoff sums the upper tail in log space from k = W
//     down, because a float64 lower CDF accumulated up to 1-α is off by one
//     at α = 2^-40 for, among others, W = 512 with H = 6 and W = 1024 with
//     H = 0.4, 0.5, 0.7, 0.8, 0.9. The tests check the cutoffs against a
//     512-bit big.Float sum with p = 2^-H computed to 512 bits, and against
//     Table 2 for α = 2^-20: binary, H = 0.2, 0.4, 0.6, 0.8, 1 gives 941,
//     840, 748, 664, 589; W = 512, H = 0.5, 1, 2, 4, 8 gives 410, 311, 177,
//     62, 13. When even an all-equal window is likelier than α, the cutoff
//     is capped at W.
//
// α defaults to 2^-20, the low end of the range §4.3 item 3 recommends
// (2^-20 to 2^-40). The permanent cutoffs use a second, smaller α,
// 2^-PermanentAlphaLog2, by default α²: the intermittent/permanent split
// is qrngd's policy (DESIGN.md: an alarm discards the window and re-runs
// start-up testing; a permanent alarm quarantines the source), as allowed
// by §4.3 requirement 2 when intermittent failures are shown to be
// extremely likely to be intermittent. Start-up testing (§4.3 item 4: at
// least 1024 consecutive samples, i.e. one binary or two non-binary
// windows) is the caller's job.
//
// # Semantics
//
// Test takes exactly one APT window of W samples, one sample per byte in
// the low SampleBits bits (the other bits are ignored). Both tests follow
// the standard's pseudocode:
//
//	RCT: A = next(); B = 1; then for each X = next():
//	     if X == A { B++; if B >= C: failure } else { A = X; B = 1 }
//	APT: A = next(); B = 1; for i = 1 to W-1:
//	     if next() == A { B++; if B >= C: failure }
//
// The RCT run carries across windows; APT windows are the Test calls. The
// whole window is processed even after an intermittent alarm, and the run
// is not reset, so a stuck source reaches the permanent cutoff. Each test
// reports its worst Outcome in the window and the absolute index (since New
// or Reset) of the sample at which it first reached that outcome. A source
// stuck at value v from sample N (sample N-1 ≠ v) raises the RCT
// intermittently at N-1+C and permanently at N-1+C_permanent; if the k
// samples before N already equal v, k samples earlier. Every later window
// of a stuck source fails from its first sample.
//
// # Implementations
//
// Tester processes eight samples per uint64: for the APT it XORs each word
// with the reference sample broadcast to all bytes and counts zero bytes
// exactly (no borrow between bytes); for the RCT it compares each word
// with itself shifted by one sample (plus the last sample of the previous
// word), advances the run length with bit scans, and walks a word sample
// by sample only when a run in it can reach the cutoff. Reference is a
// plain per-sample loop written from the pseudocode; the tests and
// FuzzTester require both to report identical Results, outcomes and
// indices. BenchmarkTester and BenchmarkReference measure both on the same
// random 8-bit data (MB/s there reads as million samples per second).
//
// # False alarms
//
// FalseAlarmsPerSample estimates the intermittent false-alarm rate from the
// cutoffs: p^(C-1)·(1-p) for the RCT (p = 2^-H; the standard bounds the
// per-sample failure probability by 2^(-H(C-1)) ≤ α) plus
// P[Binomial(W-1, p) ≥ C-1]/W for the APT, both exact for a source uniform
// over 2^H values. The APT term uses the distribution of B (the reference
// plus matches among the other W-1 samples), which is slightly below the
// footnote's Binomial(W, p) tail used to set the cutoff; a public comment on
// 90B (J. Hill, UL SP 800-90B comments, item 10b, cited in
// smuellerDD/jitterentropy-library#45) discusses that difference. This
// package keeps the standard's cutoff formula, which reproduces Table 2.
package health
