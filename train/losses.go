package train

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/models/tinyllava"
)

// SampleLoss is one sample's loss terms, each averaged over its supervised positions.
type SampleLoss struct {
	ID     string  `json:"id"`
	Tokens int     `json:"tokens"`
	CE     float64 `json:"ce"`
	Align  float64 `json:"align"`
	VSD    float64 `json:"vsd"`
	Total  float64 `json:"total"`
}

// Losses evaluates the objective without training: per sample, CE, D_align(teacher, student)
// and D_vsd(teacher, switch) averaged over that sample's supervised positions, and
// total = w_ce*ce + w_align*align + w_vsd*vsd. teacher may be nil when the objective needs none.
func Losses(student, teacher *tinyllava.Model, obj Objective, samples []Sample, batch int) ([]SampleLoss, error) {
	if err := validateObjective(obj); err != nil {
		return nil, err
	}
	sg := &stepGraph{student: student, teacher: teacher, obj: obj}
	if (sg.useAlign() || sg.useVSD()) && teacher == nil {
		return nil, fmt.Errorf("the objective (align %s, vsd %s) needs a teacher", obj.Align, obj.VSD)
	}
	if sg.useVSD() {
		if err := checkSwitch(student.Config, teacher.Config); err != nil {
			return nil, err
		}
	}
	if err := sg.prepareTwins(); err != nil {
		return nil, err
	}
	execs := map[graphKey]*Exec{}
	var out []SampleLoss
	for start := 0; start < len(samples); start += batch {
		group := samples[start:min(start+batch, len(samples))]
		var sIn, tIn []tinyllava.Input
		for _, s := range group {
			sIn, tIn = append(sIn, s.Student), append(tIn, s.Teacher)
		}
		var tc *tinyllava.Config
		if sg.needTeacher() {
			tc = teacher.Config
		}
		p, err := NewPair(student.Config, tc, sIn, tIn, 16, 16)
		if err != nil {
			return nil, err
		}
		key := p.key()
		e := execs[key]
		if e == nil {
			if e, err = NewExec(student.Backend, sg.buildLosses(key)); err != nil {
				return nil, err
			}
			execs[key] = e
		}
		args := student.ParamArgs()
		if sg.needTeacher() {
			args = append(args, sg.teacherArgs()...)
		}
		args = append(args, p.Student.Args(student.Config)...)
		if sg.needTeacher() {
			args = append(args, p.Teacher.Args(teacher.Config)...)
		}
		args = append(args, vec(p.CEPos), vec(p.CETargets), vec(p.CEWeights), tensors.FromScalar(1.0))
		if sg.needTeacher() {
			args = append(args, vec(p.KDStudent), vec(p.KDTeacher), vec(p.KDWeights), tensors.FromScalar(1.0))
		}
		res, err := e.Exec(args...)
		if err != nil {
			return nil, err
		}
		ce := tensors.MustCopyFlatData[float32](res[0])
		align := tensors.MustCopyFlatData[float32](res[1])
		vsd := tensors.MustCopyFlatData[float32](res[2])
		rows := make([]SampleLoss, len(group))
		kdCount := make([]int, len(group))
		L := p.Student.L
		for i := 0; i < p.CETokens; i++ {
			r := int(p.CEPos[i]) / L
			rows[r].CE += float64(ce[i])
			rows[r].Tokens++
		}
		for i := 0; i < p.KDTokens; i++ {
			r := int(p.KDStudent[i]) / L
			rows[r].Align += float64(align[i])
			rows[r].VSD += float64(vsd[i])
			kdCount[r]++
		}
		for r := range rows {
			rows[r].ID = group[r].Student.ID
			if rows[r].Tokens > 0 {
				rows[r].CE /= float64(rows[r].Tokens)
			}
			if kdCount[r] > 0 {
				rows[r].Align /= float64(kdCount[r])
				rows[r].VSD /= float64(kdCount[r])
			}
			rows[r].Total = obj.WCE*rows[r].CE + obj.WAlign*rows[r].Align + obj.WVSD*rows[r].VSD
		}
		out = append(out, rows...)
	}
	return out, nil
}
