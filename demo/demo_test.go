package demo

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/train"
	"github.com/switchkd/switchkd/vlm"
	"github.com/switchkd/switchkd/world"
)

func TestDemoProfilesValidate(t *testing.T) {
	for _, p := range []Profile{DefaultProfile(), QuickProfile()} {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		if p.Teacher.Vision != p.Student.Vision {
			t.Errorf("%s: teacher and student vision towers differ", p.Name)
		}
	}
	if DefaultProfile().Seeds < 3 {
		t.Errorf("the default profile has %d seeds, want >= 3", DefaultProfile().Seeds)
	}
	p := DefaultProfile()
	p.Student.Vision.Hidden = 32
	if p.Validate() == nil {
		t.Error("a student with another vision tower passed validation")
	}
	p = DefaultProfile()
	p.Methods = append(p.Methods, p.Methods[0])
	if p.Validate() == nil {
		t.Error("a repeated method passed validation")
	}
}

func TestDemoMethodObjectives(t *testing.T) {
	want := map[string][2]train.Divergence{
		"sft": {train.None, train.None}, "kd": {train.FKL, train.None}, "bild": {train.BiLD, train.None},
		"dbild": {train.DBiLD, train.None}, "vsd": {train.None, train.DBiLD}, "switchkd": {train.DBiLD, train.DBiLD},
	}
	ms := Methods()
	if len(ms) != len(want) {
		t.Fatalf("%d methods, want %d", len(ms), len(want))
	}
	for _, m := range ms {
		w, ok := want[m.Name]
		o := m.Objective
		if !ok || o.Align != w[0] || o.VSD != w[1] || o.WCE != 1 || o.Tau != 3 {
			t.Errorf("method %s: objective %+v", m.Name, o)
		}
		if (o.Align == train.None) != (o.WAlign == 0) || (o.VSD == train.None) != (o.WVSD == 0) {
			t.Errorf("method %s: weights %g/%g do not match terms %s/%s", m.Name, o.WAlign, o.WVSD, o.Align, o.VSD)
		}
		if needsTeacher(o) != (m.Name != "sft") {
			t.Errorf("method %s: needsTeacher = %v", m.Name, needsTeacher(o))
		}
	}
}

// smallWorld generates a quick-preset world with train and test images (no validation split)
// under dir/world.
func smallWorld(t *testing.T, dir string, train, test int) (world.Config, *world.Manifest) {
	t.Helper()
	cfg := world.QuickConfig()
	cfg.NumTrain, cfg.NumVal, cfg.NumTest = train, 0, test
	m, err := world.Generate(cfg, filepath.Join(dir, "world"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, m
}

// TestDemoModelsRoundTrip builds the presets on a small world, saves them in TinyLLaVA layout
// and loads them back with vlm.Load; the student's vision tower is the teacher's.
func TestDemoModelsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cfg, m := smallWorld(t, dir, 40, 4)
	assets := filepath.Join(dir, "assets")
	tok, vocab, err := WriteAssets(assets, m, 512, cfg.ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tok.TokenID("<image>"); ok {
		t.Error(`"<image>" must not be a token`)
	}
	eos, ok := tok.TokenID(data.EOSText)
	if !ok || vocab != 512 {
		t.Fatalf("eos %v %d, vocab %d", ok, eos, vocab)
	}
	if ids := tok.Encode(data.SystemPrompt); len(ids) > 40 {
		t.Errorf("the system prompt takes %d tokens; the corpus should teach BPE its words", len(ids))
	}
	if ids := tok.Encode(" No"); len(ids) != 1 {
		t.Errorf(`" No" is %d tokens, want 1 (answers keep their leading space)`, len(ids))
	}
	b := engine.MustBackend("")
	p := DefaultProfile()
	teacher, err := NewModel(p.Teacher, vocab, eos, cfg.ImageSize, 1, nil, assets, b)
	if err != nil {
		t.Fatal(err)
	}
	student, err := NewModel(p.Student, vocab, eos, cfg.ImageSize, 2, VisionTower(teacher), assets, b)
	if err != nil {
		t.Fatal(err)
	}
	if ParamCount(teacher) <= ParamCount(student) {
		t.Errorf("teacher %d parameters, student %d", ParamCount(teacher), ParamCount(student))
	}
	if n := teacher.Config.NumImageFeatures(); n != 64 {
		t.Errorf("%d image tokens, want 64 (64x64 images, patch 8)", n)
	}
	c := student.Config.Text
	if c.NumKeyValueHeads >= c.NumAttentionHeads || !c.TieWordEmbeddings || student.Config.ConnectorType != "mlp2x_gelu" {
		t.Errorf("student LLM config %+v, connector %s", c, student.Config.ConnectorType)
	}
	for _, mod := range []struct {
		name string
		m    *tinyllava.Model
	}{{"teacher", teacher}, {"student", student}} {
		out := filepath.Join(dir, mod.name)
		if err := mod.m.Save(out, "F32", assets); err != nil {
			t.Fatal(err)
		}
		v, err := vlm.Load(out, "")
		if err != nil {
			t.Fatalf("%s: %v", mod.name, err)
		}
		if len(v.StopIDs) == 0 || v.StopIDs[0] != eos {
			t.Errorf("%s: stop ids %v, want [%d]", mod.name, v.StopIDs, eos)
		}
		if v.PP.Size != cfg.ImageSize {
			t.Errorf("%s: preprocess size %d", mod.name, v.PP.Size)
		}
		for n, x := range teacher.Params.T {
			if !strings.HasPrefix(n, tinyllava.VisionPrefix) {
				continue
			}
			a, bb := tensors.MustCopyFlatData[float32](x), tensors.MustCopyFlatData[float32](v.Model.Params.T[n])
			if a[0] != bb[0] || a[len(a)-1] != bb[len(bb)-1] {
				t.Errorf("%s: vision tensor %s differs from the teacher's", mod.name, n)
				break
			}
		}
	}
}

func TestDemoConversations(t *testing.T) {
	cfg, m := smallWorld(t, t.TempDir(), 6, 1)
	ws := append(append([]world.Sample(nil), m.Captions()...), m.Samples(world.SplitTrain)...)
	cs := Conversations(ws, 1)
	if len(cs) != cfg.NumTrain {
		t.Fatalf("%d conversations, want one per train image (%d)", len(cs), cfg.NumTrain)
	}
	rounds := 0
	for _, c := range cs {
		for i, turn := range c.Conversations {
			hasImg := strings.Contains(turn.Value, "<image>")
			if hasImg != (i == 0) {
				t.Errorf("%s turn %d: <image> present %v", c.ID, i, hasImg)
			}
		}
		rounds += len(c.Conversations) / 2
	}
	if rounds != len(ws) {
		t.Errorf("%d rounds, want %d", rounds, len(ws))
	}
	// Every round's question and answer is kept, paired.
	want := map[string]bool{}
	for _, s := range ws {
		want[s.Image+"|"+s.Question()+"|"+s.Answer()] = true
	}
	for _, c := range cs {
		for i := 0; i < len(c.Conversations); i += 2 {
			q := strings.TrimPrefix(c.Conversations[i].Value, world.ImagePrefix)
			if !want[c.Image+"|"+q+"|"+c.Conversations[i+1].Value] {
				t.Errorf("%s: round %q -> %q is not a training sample of its image", c.ID, q, c.Conversations[i+1].Value)
			}
		}
	}
}

func TestDemoResultsTable(t *testing.T) {
	p := QuickProfile()
	p.Methods = Methods()[:2]
	sc := func(avg float64) map[string]float64 {
		m := map[string]float64{AverageKey: avg}
		for _, typ := range world.QATypes {
			m[typ] = avg
		}
		return m
	}
	r := &Results{Profile: p, Teacher: &ModelResult{Name: TeacherRun, Scores: sc(80)}, Blind: sc(40)}
	for seed, v := range [][2]float64{{50, 60}, {54, 70}} {
		r.Students = append(r.Students, &ModelResult{Method: "sft", Seed: seed, Scores: sc(v[0])},
			&ModelResult{Method: "kd", Seed: seed, Scores: sc(v[1])})
	}
	r.finish()
	if len(r.Rows) != 3 || r.Rows[0].Name != TeacherRun || r.Rows[1].Name != "sft" || r.Rows[2].Name != "kd" {
		t.Fatalf("rows %+v", r.Rows)
	}
	kd := r.Rows[2]
	if kd.Mean[AverageKey] != 65 || math.Abs(kd.Std[AverageKey]-math.Sqrt(50)) > 1e-9 || kd.Seeds != 2 {
		t.Errorf("kd row %+v", kd)
	}
	// gap closed = (65 - 52) / (80 - 52)
	if g := kd.GapClosed; g == nil || math.Abs(*g-13.0/28) > 1e-12 {
		t.Errorf("kd gap closed %v", g)
	}
	for _, s := range []string{"| Teacher |", "| 65.0 ± 7.1 |", "46%", "Blind"} {
		if !strings.Contains(r.Table, s) {
			t.Errorf("table lacks %q:\n%s", s, r.Table)
		}
	}
}

// TestDemoImagePath rules out a broken image path: the pixels of every packed training
// conversation are its own scene's (the PNG the sample names, preprocessed, equals the scene
// rendered in memory, as vision pre-training reads it), and they differ between images.
func TestDemoImagePath(t *testing.T) {
	dir := t.TempDir()
	cfg, m := smallWorld(t, dir, 12, 1)
	assets := filepath.Join(dir, "assets")
	_, vocab, err := WriteAssets(assets, m, 512, cfg.ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	model, err := NewModel(DefaultProfile().Student, vocab, 0, cfg.ImageSize, 1, nil, assets, engine.MustBackend(""))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vlm.FromModel(model, assets)
	if err != nil {
		t.Fatal(err)
	}
	ws := append(append([]world.Sample(nil), m.Captions()...), m.Samples(world.SplitTrain)...)
	convs := Conversations(ws, 1)
	set, err := train.PrepareSamples(convs, filepath.Join(dir, "world"), v, nil)
	if err != nil {
		t.Fatal(err)
	}
	scenes := map[string]*world.Scene{}
	for _, s := range m.Scenes() {
		scenes[s.Image] = s
	}
	seen := map[float64]string{}
	for i, s := range set {
		if len(s.Student.Images) != 1 {
			t.Fatalf("%s: %d images", convs[i].ID, len(s.Student.Images))
		}
		px := s.Student.Images[0]
		want, err := data.Preprocess(world.RenderScene(scenes[convs[i].Image]), v.PP)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for j := range px {
			if px[j] != want[j] {
				t.Fatalf("%s: pixel %d is %g, the rendered scene's %g", convs[i].ID, j, px[j], want[j])
			}
			sum += float64(px[j]) * float64(j%97)
		}
		if other, ok := seen[sum]; ok {
			t.Errorf("%s and %s have the same pixels", convs[i].ID, other)
		}
		seen[sum] = convs[i].ID
	}
}

func TestDemoCheckTeacher(t *testing.T) {
	sc := func(avg float64) map[string]float64 { return map[string]float64{AverageKey: avg} }
	// The template baseline is reported, not checked (fitted on the test questions).
	r := &Results{Blind: sc(45), BlindQuestion: sc(28), TeacherShuffled: &ModelResult{Scores: sc(30)}}
	for _, c := range []struct {
		teacher float64
		ok      bool
	}{{29, false}, {30, false}, {34.9, false}, {35, true}, {60, true}} {
		r.Teacher = &ModelResult{Scores: sc(c.teacher)}
		if err := r.CheckTeacher(5); (err == nil) != c.ok {
			t.Errorf("teacher %.1f%% vs 30%% with shuffled images, margin 5: %v", c.teacher, err)
		}
	}
	r.BlindQuestion = sc(33)
	r.Teacher = &ModelResult{Scores: sc(36)}
	if r.CheckTeacher(5) == nil {
		t.Error("a teacher 3 points above the per-question baseline passed a 5-point margin")
	}
	// A blind teacher answers the same with any image.
	r = &Results{Blind: sc(30), BlindQuestion: sc(20), Teacher: &ModelResult{Scores: sc(31)}, TeacherShuffled: &ModelResult{Scores: sc(31)}}
	if r.CheckTeacher(5) == nil {
		t.Error("a teacher that scores the same with shuffled images passed")
	}
}

func TestDemoShuffledImages(t *testing.T) {
	ss := []world.Sample{{ID: "a0", Image: "a"}, {ID: "b0", Image: "b"}, {ID: "a1", Image: "a"}, {ID: "c0", Image: "c"}}
	got := ShuffledImages(ss)
	want := []string{"b", "c", "b", "a"}
	for i := range got {
		if got[i].Image != want[i] || got[i].ID != ss[i].ID {
			t.Errorf("sample %d: %s with %s, want %s with %s", i, got[i].ID, got[i].Image, ss[i].ID, want[i])
		}
	}
	if ss[0].Image != "a" {
		t.Error("ShuffledImages changed its input")
	}
}
