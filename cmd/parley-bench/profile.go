package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// cpuProfile records the server's CPU profile for d through its private
// pprof listener (serve --pprof) and writes it to path.
func cpuProfile(ctx context.Context, pprofURL, path string, d time.Duration) error {
	secs := max(1, int(d/time.Second))
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/profile?seconds=%d", pprofURL, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// profileTop is the top of a CPU profile by cumulative and by flat time,
// as `go tool pprof` prints them. It needs the Go toolchain, which
// `make bench` has; without it the report says so.
func profileTop(bin, path string, n int) (string, error) {
	var out strings.Builder
	for _, sort := range []string{"-flat", "-cum"} {
		cmd := exec.Command("go", "tool", "pprof", "-top", sort, fmt.Sprintf("-nodecount=%d", n), bin, path)
		b, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go tool pprof: %v: %s", err, b)
		}
		out.Write(b)
		out.WriteString("\n")
	}
	return out.String(), nil
}
