package netperf

import (
	"errors"
	"strings"
	"testing"
)

func TestParseIperfReadsTheReceiversSum(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		werr      error
		want      IperfResult
		errHas    string // "" : no error
	}{
		{"a finished run", `{"start":{},"end":{"sum_sent":{"bytes":999,"bits_per_second":1},"sum_received":{"seconds":5.0001,"bytes":1250000000,"bits_per_second":2.0e9}}}`,
			nil, IperfResult{BitsPerSecond: 2e9, Bytes: 1.25e9, Seconds: 5.0001}, ""},
		{"iperf3's own error", `{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}`,
			errors.New("exit status 1"), IperfResult{}, "Connection refused"},
		{"a zero rate", `{"end":{"sum_received":{"seconds":5,"bytes":0,"bits_per_second":0}}}`, nil, IperfResult{}, "no end.sum_received"},
		{"not JSON", "iperf3: error - bad option", errors.New("exit status 1"), IperfResult{}, "cannot parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseIperf(tc.out, "", tc.werr)
			if tc.errHas == "" && (err != nil || got != tc.want) {
				t.Fatalf("parseIperf = %+v, %v; want %+v, nil", got, err, tc.want)
			}
			if tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Fatalf("parseIperf = %+v, %v; want an error containing %q", got, err, tc.errHas)
			}
		})
	}
}

func TestMedianOfOddEvenAndNoSamples(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {nil, 0}} {
		in := append([]float64(nil), tc.v...)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.v, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.v[i] {
				t.Errorf("Median reordered its argument: %v, was %v", in, tc.v)
			}
		}
	}
}
