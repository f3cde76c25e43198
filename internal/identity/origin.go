// Package identity holds Parley's identity primitives: canonical origins,
// the user_hash HMAC check, and random public ids and secrets.
package identity

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ErrOrigin is wrapped by every origin parse error, so callers can tell a
// bad origin from other failures.
var ErrOrigin = errors.New("invalid origin")

func originErr(raw, why string) error {
	return fmt.Errorf("%w %q: %s", ErrOrigin, raw, why)
}

// CanonicalOrigin parses a parent-page origin as an owner typed it and returns
// it in the form browsers put in event.origin and the Origin header:
// lower-case scheme://host[:port] with default ports dropped. Only https is
// allowed, except for localhost and 127.0.0.1, which may use http for
// development. Anything that is not exactly an origin is refused, because an
// allowlist entry that "mostly" matches is how origin checks get bypassed.
func CanonicalOrigin(raw string) (string, error) {
	if raw == "" {
		return "", originErr(raw, "empty")
	}
	if len(raw) > 255 {
		return "", originErr(raw[:32]+"…", "longer than 255 bytes")
	}
	for _, r := range raw {
		switch {
		case r <= ' ' || r == 0x7f:
			return "", originErr(raw, "contains whitespace or control characters")
		case r == ';' || r == ',':
			return "", originErr(raw, "contains ';' or ',' (one origin per entry)")
		case r == '*':
			return "", originErr(raw, "wildcards are not allowed; list each origin")
		case r > 0x7e:
			return "", originErr(raw, "contains non-ASCII characters; use the punycode (xn--) form")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", originErr(raw, "not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", originErr(raw, "scheme must be https (or http for localhost)")
	}
	if u.Opaque != "" || u.Host == "" {
		return "", originErr(raw, "must look like https://example.com")
	}
	if u.User != nil {
		return "", originErr(raw, "must not contain user info")
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(raw, "#") {
		return "", originErr(raw, "must not have a path, query or fragment")
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if host == "" {
		return "", originErr(raw, "missing host")
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", originErr(raw, "empty port")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return "", originErr(raw, "port must be 1-65535")
		}
	}
	if err := checkHost(host); err != nil {
		return "", originErr(raw, err.Error())
	}
	local := host == "localhost" || host == "127.0.0.1"
	if scheme == "http" && !local {
		return "", originErr(raw, "must use https (http is allowed only for localhost and 127.0.0.1)")
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, nil
	}
	return scheme + "://" + host, nil
}

func checkHost(host string) error {
	if ip := net.ParseIP(host); ip != nil {
		return nil
	}
	if strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") || strings.Contains(host, "..") {
		return errors.New("host has an empty label")
	}
	for _, label := range strings.Split(host, ".") {
		if len(label) > 63 {
			return errors.New("host label longer than 63 characters")
		}
		if strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return errors.New("host label starts or ends with '-'")
		}
		for _, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'
			if !ok {
				return fmt.Errorf("host contains %q", r)
			}
		}
	}
	return nil
}
