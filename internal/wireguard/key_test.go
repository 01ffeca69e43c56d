package wireguard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// perm is the permission bits of path.
func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestLoadOrCreateKeyMakesAPrivateFileInAPrivateDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node", "wireguard", "private.key")
	k, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k.Private == (wgtypes.Key{}) {
		t.Fatal("the zero key")
	}
	if p := perm(t, path); p != 0o600 {
		t.Errorf("key file mode %o, want 600", p)
	}
	if p := perm(t, filepath.Dir(path)); p != 0o700 {
		t.Errorf("key directory mode %o, want 700", p)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != k.Private.String() {
		t.Errorf("file holds %q, want the key in base64", b)
	}
	if time.Since(k.Created) > time.Minute || k.Created.After(time.Now()) {
		t.Errorf("created %s, want just now", k.Created)
	}

	again, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Private != k.Private || !again.Created.Equal(k.Created) {
		t.Errorf("reload gave %s made %s, want the same key %s made %s", again.Private.PublicKey(), again.Created,
			k.Private.PublicKey(), k.Created)
	}
}

func TestLoadOrCreateKeyMakesAReadableFilePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private.key")
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(priv.String()+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	made := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, made, made); err != nil {
		t.Fatal(err)
	}
	k, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k.Private != priv || !k.Created.Equal(made) {
		t.Errorf("got %s made %s, want the file's key made %s", k.Private.PublicKey(), k.Created, made)
	}
	if p := perm(t, path); p != 0o600 {
		t.Errorf("mode %o after loading, want 600", p)
	}
}

func TestLoadOrCreateKeyRefusesAndKeepsAFileThatIsNoKey(t *testing.T) {
	for name, body := range map[string]string{
		"text":        "this is not a key\n",
		"a short key": "AAAA\n",
		"empty":       "",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "private.key")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if k, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadOrCreateKey = %s, %v; want an error naming the file", k.Private.PublicKey(), err)
			}
			b, err := os.ReadFile(path)
			if err != nil || string(b) != body {
				t.Errorf("the file now holds %q (%v), want it untouched: %q", b, err, body)
			}
		})
	}
}

func TestNewKeyReplacesTheKeyAndItsTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private.key")
	old, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(path, past, past); err != nil {
		t.Fatal(err)
	}
	if old, err = LoadOrCreateKey(path); err != nil {
		t.Fatal(err)
	}
	nk, err := NewKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if nk.Private == old.Private {
		t.Error("NewKey kept the key")
	}
	if !nk.Created.After(old.Created.Add(23 * time.Hour)) {
		t.Errorf("created %s, want now (the old key was made %s)", nk.Created, old.Created)
	}
	if p := perm(t, path); p != 0o600 {
		t.Errorf("mode %o, want 600", p)
	}
	reloaded, err := LoadOrCreateKey(path)
	if err != nil || reloaded.Private != nk.Private {
		t.Errorf("reload gave %s (%v), want the new key", reloaded.Private.PublicKey(), err)
	}
	if strays, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(strays) != 1 {
		t.Errorf("files in the key directory: %v, want the key only", strays)
	}
}

// A key directory made by someone else with mode 0755 (the kubelet's
// hostPath) is made private, and the key in it is kept.
func TestLoadOrCreateKeyMakesAnOpenDirectoryPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wg")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "private.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Private != k2.Private {
		t.Error("the key changed")
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v, want 0700", st.Mode().Perm())
	}
}
