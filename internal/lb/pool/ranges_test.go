package pool

import (
	"strings"
	"testing"
)

func TestParseBlock(t *testing.T) {
	tests := []struct {
		name  string
		block Block
		want  string // the range, or the start of the error
	}{
		{"a cidr is every address of the prefix", Block{CIDR: "172.30.0.200/29"}, "172.30.0.200-172.30.0.207"},
		{"an IPv6 cidr", Block{CIDR: "fd00:30::/126"}, "fd00:30::-fd00:30::3"},
		{"a one-address range", Block{Start: "10.0.0.1", End: "10.0.0.1"}, "10.0.0.1"},
		{"host bits are refused", Block{CIDR: "172.30.0.201/29"}, "error: cidr \"172.30.0.201/29\" has host bits set"},
		{"an IPv6 range in reverse is refused (CEL cannot order it)", Block{Start: "fd00::9", End: "fd00::1"}, "error: range fd00::9-fd00::1: start must not be after end"},
		{"two families are refused", Block{Start: "10.0.0.1", End: "fd00::1"}, "error: range 10.0.0.1-fd00::1: start and end must be of one family"},
		{"a cidr and a range are refused", Block{CIDR: "10.0.0.0/30", Start: "10.0.0.1", End: "10.0.0.2"}, "error: a block is either"},
		{"a range needs an end", Block{Start: "10.0.0.1"}, "error: a range needs both start and end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseBlock(tt.block)
			got := r.String()
			if err != nil {
				got = "error: " + err.Error()
			}
			if !strings.HasPrefix(got, tt.want) || (err == nil && got != tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRangeSize(t *testing.T) {
	r, _ := ParseBlock(Block{CIDR: "fd00::/64"})
	if got := r.Size().String(); got != "18446744073709551616" {
		t.Errorf("a /64 holds %s addresses", got)
	}
}
