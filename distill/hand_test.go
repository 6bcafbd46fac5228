package distill

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// runDBiLD evaluates DBiLDTerms on one position.
func runDBiLD(t *testing.T, tv, sv []float32, opts DBiLDOptions) (lt, ls float64, kt, ks int) {
	t.Helper()
	e := MustNewExec(backend(), func(tt, s *Node) []*Node {
		a, b, c, d := DBiLDTerms(tt, s, nil, opts)
		return []*Node{a, b, c, d, DBiLD(tt, s, nil, opts)}
	})
	out := e.MustExec(tensors.FromFlatDataAndDimensions(tv, 1, len(tv)), tensors.FromFlatDataAndDimensions(sv, 1, len(sv)))
	lt = float64(tensors.MustCopyFlatData[float32](out[0])[0])
	ls = float64(tensors.MustCopyFlatData[float32](out[1])[0])
	kt = int(tensors.MustCopyFlatData[int32](out[2])[0])
	ks = int(tensors.MustCopyFlatData[int32](out[3])[0])
	sum := float64(tensors.MustCopyFlatData[float32](out[4])[0])
	if math.Abs(sum-(lt+ls)) > 1e-6*math.Abs(lt+ls) {
		t.Errorf("DBiLD %.9g != L_t + L_s = %.9g", sum, lt+ls)
	}
	return
}

func checkHand(t *testing.T, name string, tv, sv []float32, opts DBiLDOptions, wantKt, wantKs int, wantLt, wantLs float64) {
	t.Helper()
	lt, ls, kt, ks := runDBiLD(t, tv, sv, opts)
	if kt != wantKt || ks != wantKs {
		t.Errorf("%s: knees (k_t, k_s) = (%d, %d), want (%d, %d)", name, kt, ks, wantKt, wantKs)
	}
	for _, c := range []struct {
		what      string
		got, want float64
	}{{"L_t", lt, wantLt}, {"L_s", ls, wantLs}, {"DBiLD", lt + ls, wantLt + wantLs}} {
		if math.Abs(c.got-c.want) > 2e-6 {
			t.Errorf("%s: %s = %.7f, want %.7f", name, c.what, c.got, c.want)
		}
	}
}

// The spec's worked example (tau 1, M 5, k_min 3).
//
// Teacher: t sorted = [4, 2, 1, 0.5, 0] (indices 1, 3, 0, 4, 2); x = [0, .25, .5, .75, 1],
// y = (u - 0)/4 = [1, .5, .25, .125, 0], d = [0, .25, .25, .125, 0]: first maximum at i = 2,
// clamped up to k_min: k_t = 3. I = [1, 3, 0], a = [4, 2, 1], b = s[I] = [2, 0, 3].
// Pairs (0,1), (0,2), (1,2): A = [2, 3, 1], B = [2, -1, -3].
// P = softmax(A) = [.244728, .665241, .090031], Q = softmax(B) = [.946499, .047123, .006378].
// L_t = sum Q ln(Q/P) = .946499·1.352611 + .047123·(-2.647382) + .006378·(-2.646947) = 1.138617.
//
// Student: s sorted = [3, 2, 1, 0, -0.5] (indices 0, 1, 4, 3, 2); y = (u + .5)/3.5 =
// [1, .714286, .428571, .142857, 0], d = [0, .035714, .071429, .107143, 0]: k_s = 4.
// J = [0, 1, 4, 3], c = [3, 2, 1, 0], e = t[J] = [1, 4, .5, 2].
// Pairs of c: [1, 2, 3, 1, 2, 1] -> Q' = [.063190, .171769, .466915, .063190, .171769, .063190];
// pairs of e: [-3, .5, -1, 3.5, 2, -1.5] -> P' = [.001163, .038527, .008597, .773833, .172666, .005214].
// L_s = sum Q' ln(Q'/P') = .252431 + .256761 + 1.865232 - .158304 - .000895 + .157645 = 2.372789 (±1e-6
// from rounding the terms). DBiLD = 3.511406.
func TestDBiLDSpecWorkedExample(t *testing.T) {
	checkHand(t, "spec example", []float32{1, 4, 0, 2, 0.5}, []float32{3, 2, -0.5, 0, 1},
		DBiLDOptions{Tau: 1, Window: 5, KMin: 3}, 3, 4, 1.138617, 2.372789)
}

// Hand case 2: tau 2, V = 3 (M = min(64, 3) = 3), k_min 2; both knees hit "max d <= 0" -> k_max = 3.
//
// Teacher: t = [0, 2, 1] sorted [2, 1, 0] (indices 1, 2, 0): linear, y = 1 - x, d = [0, 0, 0] -> k_t = 3.
// a = [2, 1, 0], b = s[I] = [1, 0, 1]. Pairs /tau: A = [.5, 1, .5], B = [.5, 0, -.5], B - A = [0, -1, -1].
// Reverse KL in closed form: L = sum Q (B - A) + logZ(A) - logZ(B).
// logZ(A) = ln(2e^.5 + e) = ln 6.015724 = 1.794377; logZ(B) = ln(e^.5 + 1 + e^-.5) = ln 3.255252 = 1.180268;
// Q = [1.648721, 1, .606531]/3.255252 = [.506481, .307195, .186324]; sum Q (B - A) = -.493519.
// L_t = -.493519 + 1.794377 - 1.180268 = 0.120590 (0.1205875 at full precision).
//
// Student: s = [1, 1, 0]: a tie, stable order keeps index 0 before 1: J = [0, 1, 2], u = [1, 1, 0],
// y = [1, 1, 0], d = [0, -.5, 0] -> max d = 0 -> k_s = 3. c = [1, 1, 0], e = t[J] = [0, 2, 1].
// Pairs /tau: C = [0, .5, .5], E = [-1, -.5, .5], C - E = [1, 1, 0].
// logZ(C) = ln(1 + 2e^.5) = ln 4.297443 = 1.458049; Q' = [.232697, .383652, .383652]; sum Q'(C - E) = .616349;
// logZ(E) = ln(e^-1 + e^-.5 + e^.5) = ln 2.623131 = .964367.
// L_s = .616349 + .964367 - 1.458049 = 0.122667 (0.1226970 at full precision). DBiLD = 0.2432845.
func TestDBiLDHandCaseLinearAndTie(t *testing.T) {
	checkHand(t, "hand 2", []float32{0, 2, 1}, []float32{1, 1, 0},
		DBiLDOptions{Tau: 2, Window: 64, KMin: 2}, 3, 3, 0.1205875, 0.1226970)
}

// Hand case 3: tau 1, window 4 (V = 5), k_min 2: a steep teacher head and a tied student head.
//
// Teacher: t = [5, 0, 0, 0, 0]; window = [5, 0, 0, 0] (indices 0, 1, 2, 3: ties keep index order);
// y = [1, 0, 0, 0], x = [0, 1/3, 2/3, 1], d = [0, 2/3, 1/3, 0] -> argmax 2 -> k_t = clamp(2, 2, 4) = 2.
// One pair only: P = Q = [1] -> L_t = 0 exactly.
//
// Student: s = [0, 3, 3, 1.5, 0]; window = [3, 3, 1.5, 0] at indices [1, 2, 3, 0] (index 4's 0 ranks
// after index 0's). y = [1, 1, .5, 0], d = [0, -1/3, -1/6, 0] -> max d = 0 -> k_s = k_max = 4.
// c = [3, 3, 1.5, 0], e = t[J] = [0, 0, 0, 5].
// Pairs: C = [0, 1.5, 3, 1.5, 3, 1.5], E = [0, 0, -5, 0, -5, -5], C - E = [0, 1.5, 8, 1.5, 8, 6.5].
// logZ(C) = ln(1 + 3e^1.5 + 2e^3) = ln 54.616141 = 4.000329;
// sum Q'(C - E) = (2·1.5·e^1.5 + 2·8·e^3 + 6.5·e^1.5)/54.616141 = 363.944637/54.616141 = 6.663683;
// logZ(E) = ln(3 + 3e^-5) = ln 3.020214 = 1.105328.
// L_s = 6.663683 + 1.105328 - 4.000329 = 3.768681 (3.7686809 at full precision).
func TestDBiLDHandCaseSteepAndTies(t *testing.T) {
	checkHand(t, "hand 3", []float32{5, 0, 0, 0, 0}, []float32{0, 3, 3, 1.5, 0},
		DBiLDOptions{Tau: 1, Window: 4, KMin: 2}, 2, 4, 0, 3.7686809)
}

// A -inf follower (the teacher rules out the student's top token) gives a huge finite loss, not NaN,
// and a finite gradient; a row of the same -inf positions in both gives an ordinary value.
func TestDBiLDNegInfFollower(t *testing.T) {
	ninf := float32(math.Inf(-1))
	tv := []float32{ninf, 1, 0.5, 0, -1, -2}
	sv := []float32{4, 3.9, 3.8, 0, -1, -2} // knee k_s = 4: pairs include index 0
	e := MustNewExec(backend(), func(tt, s *Node) []*Node {
		l := DBiLD(tt, s, nil, DBiLDOptions{Tau: 1, Window: 6, KMin: 2})
		b := BiLD(tt, s, nil, 8, 1)
		return []*Node{l, Gradient(ReduceAllSum(l), s)[0], b, Gradient(ReduceAllSum(b), s)[0]}
	})
	out := e.MustExec(tensors.FromFlatDataAndDimensions(tv, 1, 6), tensors.FromFlatDataAndDimensions(sv, 1, 6))
	for i, o := range out {
		for _, v := range tensors.MustCopyFlatData[float32](o) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("output %d has a non-finite value %v", i, v)
			}
		}
	}
	if l := tensors.MustCopyFlatData[float32](out[0])[0]; l < 1e30 {
		t.Errorf("DBiLD with an impossible student top token = %g, want a huge value", l)
	}
}
