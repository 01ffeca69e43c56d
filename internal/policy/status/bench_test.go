package status

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// BenchmarkCommitted is the tracker's cost per policy sync at issue 16's
// scale: 100k policies, one of them changed per sync.
func BenchmarkCommitted(b *testing.B) {
	const n = 100_000
	nps := make([]*networkingv1.NetworkPolicy, n)
	for i := range nps {
		nps[i] = np(fmt.Sprintf("p%d", i), "1", 1)
	}
	tr := NewTracker("node-1")
	tr.Committed(at(0), nps, nps, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		nps[i%n] = np(fmt.Sprintf("p%d", i%n), fmt.Sprint(i+2), int64(i+2))
		tr.Committed(at(i+1), nps, nps, nil)
	}
}

// BenchmarkServeOneNamespace is one reader's request for one namespace of
// 10 policies among 100k.
func BenchmarkServeOneNamespace(b *testing.B) {
	const n = 100_000
	nps := make([]*networkingv1.NetworkPolicy, n)
	for i := range nps {
		nps[i] = np(fmt.Sprintf("p%d", i), "1", 1)
		nps[i].Namespace = fmt.Sprintf("ns%d", i/10)
	}
	tr := NewTracker("node-1")
	tr.Committed(at(0), nps, nps, nil)
	req := httptest.NewRequest("GET", Path+"?namespace=ns42", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w := httptest.NewRecorder()
		tr.ServeHTTP(w, req)
		_, _ = io.Copy(io.Discard, w.Body)
	}
}
