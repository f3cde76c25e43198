package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Guard decides which addresses a webhook may be sent to. An owner types
// the URL, so without it an owner could make Parley call the operator's
// internal services or the cloud's metadata endpoint. Loopback, private,
// link-local, shared (CGNAT), unspecified and multicast addresses are
// refused, unless the operator allows a range (serve --webhook-allow).
// http:// is accepted only for allowed ranges: in the open, https.
type Guard struct {
	allow []netip.Prefix
}

// ParseAllow reads the operator's allowed ranges: CIDRs or single IPs.
func ParseAllow(raw []string) (Guard, error) {
	var g Guard
	for _, r := range raw {
		for part := range strings.SplitSeq(r, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if ip, err := netip.ParseAddr(part); err == nil && ip.Zone() == "" {
				g.allow = append(g.allow, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return Guard{}, fmt.Errorf("webhooks: --webhook-allow %q is not a CIDR such as 127.0.0.0/8 or an IP", part)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 { // ::ffff:10.0.0.0/104 is 10.0.0.0/8
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			g.allow = append(g.allow, p.Masked())
		}
	}
	return g, nil
}

// blocked are the ranges a webhook may not reach unless allowed.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
		"::/96", "::1/128", "::ffff:0:0:0/96", "fc00::/7", "fec0::/10", "fe80::/10", "ff00::/8", "64:ff9b:1::/48", "2001:db8::/32",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

func (g Guard) allowed(ip netip.Addr) bool {
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ErrInternal refuses an internal address without naming it: whoever
// typed the URL (anyone with an app's API key) must not learn what the
// operator's names resolve to.
var ErrInternal = errors.New("webhooks: the URL's host is, or resolves to, a loopback, private, link-local or otherwise internal address; " +
	"the operator can allow its range with --webhook-allow")

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// CheckIP refuses an address a webhook may not reach.
func (g Guard) CheckIP(ip netip.Addr) error {
	if ip.Zone() != "" {
		return ErrInternal // an interface's zone: link-local or loopback by nature
	}
	ip = ip.Unmap()
	if g.allowed(ip) {
		return nil
	}
	// IPv6 forms that carry an IPv4 address are judged by that address.
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return g.CheckIP(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		return g.CheckIP(netip.AddrFrom4([4]byte(b[2:6])))
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return ErrInternal
		}
	}
	return nil
}

// Resolver looks host names up; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckURL refuses a URL a webhook may not be sent to: not http(s), with
// credentials or a fragment, plain http outside the allowed ranges, or a
// host that resolves to an address CheckIP refuses. It is checked again at
// every send, since a name's addresses can change.
func (g Guard) CheckURL(ctx context.Context, r Resolver, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" || u.Opaque != "" {
		return nil, fmt.Errorf("webhooks: %q is not an https:// URL", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("webhooks: a webhook URL carries no user or password; the signature authenticates Parley")
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("webhooks: a webhook URL has no #fragment")
	}
	if len(raw) > 2000 {
		return nil, fmt.Errorf("webhooks: a webhook URL is at most 2,000 bytes")
	}
	addrs, err := g.Resolve(ctx, r, u.Hostname())
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && u.Scheme == "https" {
		// A name that does not resolve from here yet (or not from the
		// machine running the CLI) is taken: every send resolves it again
		// and refuses internal addresses then.
		return u, nil
	}
	if err != nil {
		return nil, err
	}
	if u.Scheme == "http" {
		for _, a := range addrs {
			if !g.allowed(a.Unmap()) {
				return nil, fmt.Errorf("webhooks: %q must be https://; plain http is only for the ranges the operator allows with --webhook-allow", raw)
			}
		}
	}
	return u, nil
}

// Resolve returns host's addresses, or an error if any is refused.
func (g Guard) Resolve(ctx context.Context, r Resolver, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		addrs, err = r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			// The resolver's own words (its address, say) stay here.
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) {
				return nil, &net.DNSError{Err: "cannot resolve it", Name: host, IsNotFound: dnsErr.IsNotFound}
			}
			return nil, fmt.Errorf("webhooks: cannot resolve %s", host)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("webhooks: %s has no address", host)
	}
	for _, a := range addrs {
		if err := g.CheckIP(a); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

// DialControl is a net.Dialer Control function that refuses a connection
// to an address CheckIP refuses: the check at the moment of connecting,
// after any DNS answer, so a name that resolves differently at send time
// (DNS rebinding) still cannot reach inside.
func (g Guard) DialControl(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	return g.CheckIP(ip)
}
