package train_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/train"
	"github.com/switchkd/switchkd/vlm"
)

// switchFixture is written by reference/switchkd_losses_ref.py: a tiny teacher/student pair
// (same tokenizer and vision shape; student vision = teacher vision + noise; vocab 432 vs 440)
// and the float64 per-sample Switch-KD loss terms for several objective settings.
type switchFixture struct {
	Format  string `json:"format"`
	Teacher string `json:"teacher"`
	Student string `json:"student"`
	Data    string `json:"data"`
	Images  string `json:"images"`
	Margins []struct {
		Setting string   `json:"setting"`
		Knee    *float64 `json:"knee"`
		TopK    *float64 `json:"topk"`
	} `json:"margins"`
	Settings []struct {
		Name      string `json:"name"`
		Objective struct {
			WCE    float64 `json:"w_ce"`
			WAlign float64 `json:"w_align"`
			WVSD   float64 `json:"w_vsd"`
			Align  string  `json:"align"`
			VSD    string  `json:"vsd"`
			Tau    float64 `json:"tau"`
			Window int     `json:"window"`
			KMin   int     `json:"k_min"`
			KMax   int     `json:"k_max"`
			BiLDK  int     `json:"bild_k"`
		} `json:"objective"`
		Samples []train.SampleLoss `json:"samples"`
	} `json:"settings"`
}

// lossTol: float32 compute against float64 numbers: 1e-4 relative or 1e-6 absolute.
func lossTol(want float64) float64 { return math.Max(1e-4*math.Abs(want), 1e-6) }

func TestLossesParityWithPyTorch(t *testing.T) {
	dir := filepath.Join("..", "testdata", "switch")
	b, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx switchFixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	if fx.Format != "switchkd-losses-ref/1" || len(fx.Settings) == 0 {
		t.Fatalf("unexpected fixture format %q with %d settings", fx.Format, len(fx.Settings))
	}
	teacher, err := vlm.Load(filepath.Join(dir, fx.Teacher), "")
	if err != nil {
		t.Fatal(err)
	}
	student, err := vlm.Load(filepath.Join(dir, fx.Student), "")
	if err != nil {
		t.Fatal(err)
	}
	if vt, vs := teacher.Model.Config.Text.VocabSize, student.Model.Config.Text.VocabSize; vt != 432 || vs != 440 {
		t.Fatalf("fixture pair vocabularies %d / %d, want 432 / 440 (the cut to the smaller must be exercised)", vt, vs)
	}
	samples, err := data.ReadLLaVAJSON(filepath.Join(dir, fx.Data))
	if err != nil {
		t.Fatal(err)
	}
	items, err := train.PrepareSamples(samples, filepath.Join(dir, fx.Images), student, teacher)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range fx.Settings {
		o := st.Objective
		obj := train.DefaultObjective()
		obj.WCE, obj.WAlign, obj.WVSD = o.WCE, o.WAlign, o.WVSD
		if obj.Align, err = train.ParseDivergence(o.Align); err != nil {
			t.Fatal(err)
		}
		if obj.VSD, err = train.ParseDivergence(o.VSD); err != nil {
			t.Fatal(err)
		}
		obj.Tau, obj.BiLDK = o.Tau, o.BiLDK
		obj.DBiLD.Tau, obj.DBiLD.Window, obj.DBiLD.KMin, obj.DBiLD.KMax = o.Tau, o.Window, o.KMin, o.KMax
		// Alternate batch sizes: the terms are per sample, so the batching must not matter.
		batch := []int{4, 1, 6}[i%3]
		t.Run(fmt.Sprintf("%s/batch%d", st.Name, batch), func(t *testing.T) {
			got, err := train.Losses(student.Model, teacher.Model, obj, items, batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(st.Samples) {
				t.Fatalf("%d rows, want %d", len(got), len(st.Samples))
			}
			worst, worstAt := 0.0, "" // largest |diff| / tolerance seen
			for j, w := range st.Samples {
				g := got[j]
				if g.ID != w.ID || g.Tokens != w.Tokens {
					t.Errorf("row %d: id %q tokens %d, want %q %d", j, g.ID, g.Tokens, w.ID, w.Tokens)
					continue
				}
				for _, term := range []struct {
					name      string
					got, want float64
				}{{"ce", g.CE, w.CE}, {"align", g.Align, w.Align}, {"vsd", g.VSD, w.VSD}, {"total", g.Total, w.Total}} {
					d := math.Abs(term.got - term.want)
					if r := d / lossTol(term.want); r > worst {
						worst, worstAt = r, w.ID+" "+term.name
					}
					if !(d <= lossTol(term.want)) {
						t.Errorf("%s %s: got %.9g, want %.9g (|diff| %.3g, rel %.3g, tol %.3g)",
							w.ID, term.name, term.got, term.want, d, d/math.Abs(term.want), lossTol(term.want))
					}
				}
			}
			t.Logf("worst term (%s) uses %.3f of the tolerance", worstAt, worst)
		})
	}
}
