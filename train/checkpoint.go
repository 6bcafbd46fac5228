package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/safetensors"
)

// A checkpoint folder checkpoints/step-NNNNNNNN holds the student's parameters
// (student.safetensors, all tensors, float32), the optimizer moments (optimizer.safetensors:
// m.<name>, v.<name>) and state.json. It is written beside its final name and renamed into
// place, so a crash leaves either the previous checkpoints or the new one, never half of one.

type state struct {
	Stage      int          `json:"stage"`
	StageStep  int          `json:"stage_step"`
	GlobalStep int          `json:"global_step"`
	Feed       FeedPosition `json:"feed"`
	Tokens     int          `json:"tokens"`
}

func (t *Trainer) checkpointDir() string { return filepath.Join(t.Opt.Out, "checkpoints") }

func (t *Trainer) checkpoint() error {
	root := t.checkpointDir()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	final := filepath.Join(root, fmt.Sprintf("step-%08d", t.globalStep))
	tmp, err := os.MkdirTemp(root, ".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	var ts []safetensors.Tensor
	for n, x := range t.Student.Params.T {
		ts = append(ts, safetensors.Tensor{Name: n, DType: safetensors.F32, Shape: x.Shape().Dimensions, F32: tensors.MustCopyFlatData[float32](x)})
	}
	if err := safetensors.Write(filepath.Join(tmp, "student.safetensors"), ts, nil); err != nil {
		return err
	}
	ts = ts[:0]
	for n, x := range t.m {
		ts = append(ts, safetensors.Tensor{Name: "m." + n, DType: safetensors.F32, Shape: x.Shape().Dimensions, F32: tensors.MustCopyFlatData[float32](x)})
		y := t.v[n]
		ts = append(ts, safetensors.Tensor{Name: "v." + n, DType: safetensors.F32, Shape: y.Shape().Dimensions, F32: tensors.MustCopyFlatData[float32](y)})
	}
	if err := safetensors.Write(filepath.Join(tmp, "optimizer.safetensors"), ts, nil); err != nil {
		return err
	}
	st := state{Stage: t.stage, StageStep: t.step, GlobalStep: t.globalStep, Feed: t.Feed.Position(), Tokens: t.tokensSeen}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "state.json"), b, 0o644); err != nil {
		return err
	}
	os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	ok = true
	return t.prune()
}

func (t *Trainer) listCheckpoints() ([]string, error) {
	entries, err := os.ReadDir(t.checkpointDir())
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "step-") {
			out = append(out, filepath.Join(t.checkpointDir(), e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (t *Trainer) prune() error {
	keep := t.Opt.KeepLast
	if keep <= 0 {
		keep = 1
	}
	cps, err := t.listCheckpoints()
	if err != nil {
		return err
	}
	for len(cps) > keep {
		if err := os.RemoveAll(cps[0]); err != nil {
			return err
		}
		cps = cps[1:]
	}
	return nil
}

// Resume restores the latest checkpoint under Opt.Out, if any, and reports whether it did.
// metrics.jsonl is cut back to the checkpoint's step, so the continued run appends exactly the
// lines an uninterrupted run would have written.
func (t *Trainer) Resume() (bool, error) {
	cps, err := t.listCheckpoints()
	if err != nil || len(cps) == 0 {
		return false, err
	}
	dir := cps[len(cps)-1]
	var st state
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return false, fmt.Errorf("resuming: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return false, fmt.Errorf("resuming: %s: %w", filepath.Join(dir, "state.json"), err)
	}
	if st.Stage < 0 || st.Stage > len(t.Stages) {
		return false, fmt.Errorf("resuming: checkpoint %s is at stage %d, but the configuration has %d stages", dir, st.Stage, len(t.Stages))
	}
	ar, err := safetensors.Open(filepath.Join(dir, "student.safetensors"))
	if err != nil {
		return false, err
	}
	defer ar.Close()
	for _, n := range ar.Names() {
		old, ok := t.Student.Params.T[n]
		if !ok {
			return false, fmt.Errorf("resuming: checkpoint tensor %s is not in the student model", n)
		}
		info, _ := ar.Info(n)
		if fmt.Sprint(info.Shape) != fmt.Sprint(old.Shape().Dimensions) {
			return false, fmt.Errorf("resuming: checkpoint tensor %s has shape %v, the student has %v", n, info.Shape, old.Shape().Dimensions)
		}
		v, err := ar.Float32(n)
		if err != nil {
			return false, err
		}
		t.Student.Params.T[n] = tensors.FromFlatDataAndDimensions(v, info.Shape...)
	}
	t.stage, t.step, t.globalStep, t.tokensSeen = st.Stage, st.StageStep, st.GlobalStep, st.Tokens
	t.resumedAt = st.GlobalStep
	if t.stage < len(t.Stages) && t.step >= t.Stages[t.stage].Steps {
		t.stage, t.step = t.stage+1, 0
	} else {
		oa, err := safetensors.Open(filepath.Join(dir, "optimizer.safetensors"))
		if err != nil {
			return false, err
		}
		defer oa.Close()
		t.m, t.v = map[string]*tensors.Tensor{}, map[string]*tensors.Tensor{}
		for _, n := range oa.Names() {
			info, _ := oa.Info(n)
			v, err := oa.Float32(n)
			if err != nil {
				return false, err
			}
			x := tensors.FromFlatDataAndDimensions(v, info.Shape...)
			switch {
			case strings.HasPrefix(n, "m."):
				t.m[n[2:]] = x
			case strings.HasPrefix(n, "v."):
				t.v[n[2:]] = x
			}
		}
	}
	if err := t.Feed.Seek(st.Feed); err != nil {
		return false, err
	}
	return true, t.truncateMetrics(st.GlobalStep)
}

func (t *Trainer) metricsPath() string { return filepath.Join(t.Opt.Out, "metrics.jsonl") }

func (t *Trainer) openMetrics() error {
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if t.globalStep == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(t.metricsPath(), flags, 0o644)
	t.metrics = f
	return err
}

// truncateMetrics keeps only the lines of steps <= step.
func (t *Trainer) truncateMetrics(step int) error {
	f, err := os.Open(t.metricsPath())
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	var keep []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m Metrics
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Step <= step {
			keep = append(keep, sc.Text())
		}
	}
	f.Close()
	if err := sc.Err(); err != nil {
		return err
	}
	out := strings.Join(keep, "\n")
	if len(keep) > 0 {
		out += "\n"
	}
	tmp := t.metricsPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, t.metricsPath())
}
