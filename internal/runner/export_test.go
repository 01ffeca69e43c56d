package runner

import "time"

// backoffForTest shortens the first retry delay.
func (r *Runner) backoffForTest(d time.Duration) { r.minInterval = d }
