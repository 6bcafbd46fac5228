// Package distill implements the Switch-KD loss terms (spec: shared/spec/SWITCH-KD.md, "The
// objective", "DBiLD", "Conventions") as GoMLX graph functions.
//
// Layout: logits are [N, V] over the N supervised positions (already gathered by the caller, in
// answer-token order); teacher and student vocabularies may differ (distillation terms use the
// first min(V_T, V_S) logits, CE the student's full vocabulary); mask [N] is 1 for real positions
// and 0 for padding rows of a bucketed N. Every loss returns per-position values [N] float32 (0 on
// padding rows); MaskedMean / SegmentMean average them with float64 accumulation. Teacher logits
// are constants (StopGradient); gradients flow into the student-side logits.
//
// Terms: CE, ForwardKL, ReverseKL (tau^2 scaled), JSD (no tau^2), BiLD (k = 8, forward KL on pair
// differences), DBiLD (knee-selected k, reverse KL on pair differences, no tau^2), and the
// dispatch Objective / ApplyDivergence / ParseDivergence. Knee is the host-side (float64) knee;
// KneeK the same in the graph (float64, same operation order, so both agree exactly).
//
// Speed on the go backend (2 cores): graph.TopK is a full comparator sort (about 2 s per row of
// 151936), so top-M selection is done by TopMIndices, exact and sort-free (M rounds of ArgMax
// over short rows; over vocabulary-sized rows a tournament: ArgMax over strided blocks, then M
// small rounds); full-vocabulary losses use the fused softmax, row sums as products with ones
// (layers.SumLastAxis) and hand-written gradients (see vocab.go). The pair terms are computed on the gathered
// M-window only, and without the [N, M, M] pair matrix: pairs inside blocks of 8 one by one, pairs
// across blocks through per-block sums (pairMarginals; exact for any finite spread). Figures are
// in bench_test.go's header and docs/BENCHMARKS.md.
//
// Conventions added where the spec is silent (mirrored by reference/losses_ref.py):
//   - -inf entries of a leader's window are never selected: the knee is taken over the finite head
//     of the window and k_min, k_max are capped at its length (BiLD's k likewise); fewer than two
//     finite entries give a zero term.
//   - In pair differences a -inf follower value is clamped to -2^122, so an impossible token gives a
//     huge finite loss instead of NaN; 0·log 0 = 0 everywhere.
//   - The knee is computed in float64 exactly as written in the spec (x, y, d in that order);
//     rounding is part of the contract (e.g. a window [3, 3, 1, 0] has its knee at 3, not k_max).
package distill
