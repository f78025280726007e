package dpsgd

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// TrainPoisson runs steps DP steps on records, each on a fresh Poisson
// sample at rate q (each record in with probability q, independently):
// exactly the sampling the accountant assumes for (q, steps). sample
// drives the sampling; for a private run seed it from crypto/rand and
// never log it. onStep, when set, sees each step's stats, which are not
// DP: for progress and monitoring only, never for release.
func TrainPoisson(ctx context.Context, tr *Trainer, records [][]int32, q float64, steps int, sample *rand.Rand, onStep func(step int, st StepStats)) error {
	for s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		idx := PoissonBatch(len(records), q, sample)
		batch := make([][]int32, len(idx))
		for i, j := range idx {
			batch[i] = records[j]
		}
		st, err := tr.Step(batch)
		if err != nil {
			return fmt.Errorf("dpsgd: step %d of %d: %w", s+1, steps, err)
		}
		if onStep != nil {
			onStep(s, st)
		}
	}
	return nil
}
