package load

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Refresh and layout of the live view.
const (
	ttyInterval   = 250 * time.Millisecond
	plainInterval = time.Second
	window        = time.Second // "last second" of the live view
	barWidth      = 20
	maxRows       = 12 // version rows shown; the rest are counted
	maxInstances  = 6  // instance rows shown under a version; the rest are counted
	width         = 80 // columns the frame is drawn for; longer lines are clipped so they cannot wrap
)

// view draws the live view: a frame redrawn in place on a terminal, plain
// lines elsewhere.
type view struct {
	cfg     Config
	o       Options
	r       *runner
	history []point // frames of the last window, oldest first
	lines   int     // lines of the frame on screen, to redraw over
	buf     bytes.Buffer
}

// point is the cumulative tally at one frame.
type point struct {
	at        time.Time
	requests  int64
	versions  map[string]int64
	instances map[instanceKey]int64
}

func newView(c Config, o Options, r *runner) *view {
	return &view{cfg: c, o: o, r: r}
}

func (v *view) loop(ctx context.Context) {
	if v.o.Out == nil {
		return
	}
	every := plainInterval
	if v.o.TTY {
		every = ttyInterval
		io.WriteString(v.o.Out, "\x1b[?25l") // hide the cursor while redrawing
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			v.frame(now, v.r.snapshot())
		}
	}
}

// recent returns the tally's change over the last window (or since the
// start, early on), and that span.
func (v *view) recent(now time.Time, t *tally) (p point, span time.Duration) {
	cur := point{at: now, requests: t.requests, versions: t.versions, instances: t.instances}
	v.history = append(v.history, cur)
	// Keep the newest point at least a window old, and those after it.
	i := 0
	for i+1 < len(v.history) && now.Sub(v.history[i+1].at) >= window {
		i++
	}
	v.history = v.history[i:]
	old := point{at: v.r.start} // early on: since the start
	if now.Sub(v.history[0].at) >= window {
		old = v.history[0]
	}
	d := point{requests: cur.requests - old.requests, versions: map[string]int64{}, instances: map[instanceKey]int64{}}
	for k, n := range cur.versions {
		d.versions[k] = n - old.versions[k]
	}
	for k, n := range cur.instances {
		d.instances[k] = n - old.instances[k]
	}
	return d, now.Sub(old.at)
}

func (v *view) frame(now time.Time, t *tally) {
	last, span := v.recent(now, t)
	elapsed := now.Sub(v.r.start)
	v.buf.Reset()
	if v.o.TTY {
		v.drawTTY(t, last, span, elapsed)
	} else {
		v.drawPlain(t, last, span, elapsed)
	}
	v.o.Out.Write(v.buf.Bytes())
}

func (v *view) drawPlain(t *tally, last point, span, elapsed time.Duration) {
	b := &v.buf
	fmt.Fprintf(b, "load t=%.1fs requests=%d rate=%.1f/s in_flight=%d errors=%d error_rate=%.2f%%",
		elapsed.Seconds(), t.requests, float64(last.requests)/span.Seconds(), v.r.inFlight.Load(),
		t.failed(), 100*ratio(t.failed(), t.requests))
	l := latencyOf(&t.lat)
	fmt.Fprintf(b, " p50=%s p90=%s p99=%s max=%s", fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max))
	fmt.Fprintf(b, " versions_1s=%s versions=%s", shares(last.versions), shares(t.versions))
	if v.cfg.PerInstance {
		fmt.Fprintf(b, " instances_1s=%s instances=%s", shares(byInstance(last.instances)), shares(byInstance(t.instances)))
	}
	b.WriteString("\n")
}

// shares formats counts as "a:60%,b:40%", in version order, leaving out
// zeros; "-" when there are none.
func shares(m map[string]int64) string {
	var total int64
	for _, n := range m {
		total += n
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s:%.0f%%", k, 100*ratio(m[k], total)))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

// byInstance keys instance counts by "version/instance".
func byInstance(m map[instanceKey]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, n := range m {
		out[k.version+"/"+k.instance] = n
	}
	return out
}

func (v *view) drawTTY(t *tally, last point, span, elapsed time.Duration) {
	b := &v.buf
	if v.lines > 0 {
		fmt.Fprintf(b, "\x1b[%dF\x1b[J", v.lines) // back to the frame's first line, clear below
	}
	start := b.Len()
	mode := fmt.Sprintf("closed loop, %d workers", v.cfg.Concurrency)
	if v.cfg.Rate > 0 {
		mode = fmt.Sprintf("open loop, %g/s", v.cfg.Rate)
	}
	fmt.Fprintf(b, "flotilla load  %s %s  %s\n", v.cfg.Method, redact(v.cfg.URL), mode)

	progress := 0.0
	if v.cfg.Duration > 0 {
		progress = elapsed.Seconds() / v.cfg.Duration.Seconds()
	}
	if v.cfg.Requests > 0 {
		progress = max(progress, ratio(t.requests, v.cfg.Requests))
	}
	fmt.Fprintf(b, "%s %3.0f%%  %s  %d requests  %.0f/s  %d in flight\n",
		bar(progress, barWidth+barWidth/2), 100*min(progress, 1), fmtDur(elapsed.Round(100*time.Millisecond)),
		t.requests, float64(last.requests)/span.Seconds(), v.r.inFlight.Load())

	fmt.Fprintf(b, "\n%-16s %-28s %s\n", "version", "last 1s", "overall")
	var lastTotal, total int64
	for _, n := range last.versions {
		lastTotal += n
	}
	total = t.answered()
	row := func(name string, lastN, n int64) {
		fmt.Fprintf(b, "%-16s %s %4.0f%%  %s %4.0f%% %8d\n", clip(name, 16),
			bar(ratio(lastN, lastTotal), barWidth), 100*ratio(lastN, lastTotal),
			bar(ratio(n, total), barWidth), 100*ratio(n, total), n)
	}
	var instances []Count
	if v.cfg.PerInstance {
		instances = t.counts(true)
	}
	for i, ver := range sortedKeys(t.versions) {
		if i == maxRows {
			fmt.Fprintf(b, "  … %d more versions\n", len(t.versions)-maxRows)
			break
		}
		row(ver, last.versions[ver], t.versions[ver])
		shown, more := 0, 0
		for _, c := range instances {
			switch {
			case c.Version != ver:
			case shown == maxInstances:
				more++
			default:
				shown++
				row("  "+c.Instance, last.instances[instanceKey{ver, c.Instance}], c.Count)
			}
		}
		if more > 0 {
			fmt.Fprintf(b, "  … %d more instances\n", more)
		}
	}
	if len(t.versions) == 0 {
		b.WriteString("(no answers yet)\n")
	}

	status := "status   "
	for _, code := range sortedKeys(t.status) {
		status += fmt.Sprintf(" %d ×%d", code, t.status[code])
	}
	fmt.Fprintf(b, "\n%s\nerrors    %d (%.2f%%)  refused %d  reset %d  timeout %d  5xx %d  other %d\n",
		status, t.failed(), 100*ratio(t.failed(), t.requests), t.errs[kindRefused], t.errs[kindReset],
		t.errs[kindTimeout], t.serverErrors(), t.errs[kindOther])
	l := latencyOf(&t.lat)
	fmt.Fprintf(b, "latency   p50 %s  p90 %s  p99 %s  max %s\n", fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max))
	// Clip every line: one that wrapped would make the next redraw start
	// a line too low.
	lines := strings.SplitAfter(string(b.Bytes()[start:]), "\n")
	b.Truncate(start)
	for _, l := range lines {
		if nl := strings.HasSuffix(l, "\n"); nl {
			b.WriteString(clip(strings.TrimSuffix(l, "\n"), width) + "\n")
		} else {
			b.WriteString(clip(l, width))
		}
	}
	v.lines = bytes.Count(b.Bytes()[start:], []byte("\n"))
}

// finish replaces the live frame with the summary.
func (v *view) finish(s Summary) {
	if v.o.Out == nil {
		return
	}
	v.buf.Reset()
	if v.o.TTY {
		if v.lines > 0 {
			fmt.Fprintf(&v.buf, "\x1b[%dF\x1b[J", v.lines)
		}
		v.buf.WriteString("\x1b[?25h")
	}
	s.writeText(&v.buf, v.cfg)
	v.o.Out.Write(v.buf.Bytes())
}

func (s Summary) writeText(b *bytes.Buffer, c Config) {
	fmt.Fprintf(b, "flotilla load: %s, %s\n", redact(s.URL), describe(c))
	fmt.Fprintf(b, "  requests   %d in %s: %.1f/s", s.Requests, fmtDur(s.Elapsed), s.Rate)
	if s.Unsent > 0 {
		fmt.Fprintf(b, ", %d due but not sent (%d in flight until the end)", s.Unsent, s.Concurrency)
	}
	if s.Interrupted {
		b.WriteString(" (interrupted)")
	}
	k := s.ErrorKinds
	fmt.Fprintf(b, "\n  errors     %d (%.2f%%): refused %d, reset %d, timeout %d, 5xx %d, other %d\n",
		s.Errors, 100*s.ErrorRate, k.Refused, k.Reset, k.Timeout, k.ServerErr, k.Other)
	for _, e := range s.ErrorSamples {
		fmt.Fprintf(b, "  %-10s %d× %s (first at %s)\n", "", e.Count, clip(e.Error, 160), fmtDur(e.First))
	}
	b.WriteString("  status    ")
	for _, code := range sortedKeys(s.Status) {
		fmt.Fprintf(b, " %d ×%d", code, s.Status[code])
	}
	b.WriteString("\n")
	for i, ver := range s.Versions {
		label := ""
		if i == 0 {
			label = "versions"
		}
		fmt.Fprintf(b, "  %-10s %-14s %5.1f%% %9d\n", label, clip(ver.Version, 14), 100*ver.Share, ver.Count)
		for _, in := range s.Instances {
			if in.Version == ver.Version {
				fmt.Fprintf(b, "  %-10s   %-12s %5.1f%% %9d\n", "", clip(in.Instance, 12), 100*in.Share, in.Count)
			}
		}
	}
	l := s.Latency
	fmt.Fprintf(b, "  latency    min %s  mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		fmtDur(l.Min), fmtDur(l.Mean), fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999), fmtDur(l.Max))
	if len(s.Failures) == 0 {
		b.WriteString("  result     ok\n")
		return
	}
	for i, f := range s.Failures {
		label := ""
		if i == 0 {
			label = "FAILED"
		}
		fmt.Fprintf(b, "  %-10s %s\n", label, f)
	}
}

func describe(c Config) string {
	if c.Rate > 0 {
		return fmt.Sprintf("open loop at %g/s (at most %d in flight)", c.Rate, c.Concurrency)
	}
	return fmt.Sprintf("closed loop, %d workers", c.Concurrency)
}

// bar draws fraction f (0..1) as width cells, in eighths of a cell.
func bar(f float64, width int) string {
	eighths := int(min(max(f, 0), 1)*float64(width*8) + 0.5)
	full, part := eighths/8, eighths%8
	var b strings.Builder
	b.WriteString(strings.Repeat("█", full))
	if part > 0 {
		b.WriteString(string([]rune("▏▎▍▌▋▊▉")[part-1]))
		full++
	}
	b.WriteString(strings.Repeat("░", width-full))
	return b.String()
}

// fmtDur prints d with three significant digits: 812µs, 12.3ms, 1.20s.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func ratio(n, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(n) / float64(total)
}

// clip shortens s to n runes and replaces what a terminal would act on
// (escape sequences, in text the target sent) with '?'.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// sortedKeys orders version names (Unknown last) or status codes.
func sortedKeys[K cmp.Ordered](m map[K]int64) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int {
		if as, ok := any(a).(string); ok {
			return compareVersions(as, any(b).(string))
		}
		return cmp.Compare(a, b)
	})
	return keys
}
