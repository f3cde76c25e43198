package handlers

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPI describes the server API (OpenAPI 3.1). web's test checks it is
// valid, names exactly the API's routes, and matches its answers.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI serves GET /api/v1/openapi.json, with no key: it is public.
func OpenAPI(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/json", openAPI)
}
