// Package parley holds the assets that are built into the parley binary,
// so it runs from any folder with nothing beside it.
package parley

import "embed"

// Static is the static/ folder: the loader script and the chat frame's
// script and stylesheet.
//
//go:embed static
var Static embed.FS
