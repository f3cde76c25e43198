package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// readyTimeout bounds each readiness check: a balancer asks often, and a
// database that takes longer than this to answer is as good as down.
const readyTimeout = 2 * time.Second

// ReadyCheck is one thing a node needs in order to serve: its database,
// its hub. Ready returns nil while that holds.
type ReadyCheck struct {
	Name  string
	Ready func(context.Context) error
}

// Readiness serves GET /readyz for load balancers: 200 while every check
// passes, 503 naming the ones that fail otherwise. GET /healthz only says
// the process is alive; a node that is alive but cannot reach its
// database should get no traffic, and should not be restarted for it.
type Readiness struct {
	Checks []ReadyCheck
	Log    *slog.Logger
}

type readyJSON struct {
	Ready   bool     `json:"ready"`
	Failing []string `json:"failing,omitempty"`
}

// Show serves GET /readyz. The reasons are logged, not answered: they may
// name paths or hosts.
func (h *Readiness) Show(c echo.Context) error {
	var failing []string
	for _, check := range h.Checks {
		ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
		err := check.Ready(ctx)
		cancel()
		if err != nil {
			failing = append(failing, check.Name)
			h.Log.Warn("not ready", "check", check.Name, "err", err)
		}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if len(failing) > 0 {
		return c.JSON(http.StatusServiceUnavailable, readyJSON{Failing: failing})
	}
	return c.JSON(http.StatusOK, readyJSON{Ready: true})
}
