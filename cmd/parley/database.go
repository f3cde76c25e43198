package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/parley-chat/parley/internal/store"
)

// Where a command's data lives: a SQLite file (--db, PARLEY_DB) or a
// PostgreSQL database (--database-url, PARLEY_DATABASE_URL). Commands pass
// the one named on as a location string, which store.Open tells apart.

const (
	dbEnv          = "PARLEY_DB"
	databaseURLEnv = "PARLEY_DATABASE_URL"
)

// databaseFlags are a command's --db and --database-url.
type databaseFlags struct {
	fs          *flag.FlagSet
	path, url   *string
	defaultPath string
}

// addDatabaseFlags adds --db and --database-url to fs. defaultPath is
// the SQLite file used when neither they nor the environment name one
// ("" for none).
func addDatabaseFlags(fs *flag.FlagSet, defaultPath string) *databaseFlags {
	help := "SQLite database `path` (" + dbEnv + ")"
	if defaultPath != "" {
		help = "SQLite database `path`"
	}
	return &databaseFlags{
		fs:          fs,
		path:        fs.String("db", defaultPath, help),
		url:         fs.String("database-url", "", "PostgreSQL database `URL`, postgres://USER[:PASS]@HOST:PORT/DB?sslmode=disable, instead of --db ("+databaseURLEnv+")"),
		defaultPath: defaultPath,
	}
}

// location is the database the command was given: a path, a postgres://
// URL, or "" when none. Naming both kinds is a usage error: which one was
// meant cannot be guessed, and guessing wrong would write to the other.
func (d *databaseFlags) location() (string, error) {
	set := map[string]bool{}
	d.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["db"] && set["database-url"]:
		return "", usageError{"--db (a SQLite file) and --database-url (PostgreSQL) name two databases; give one of them"}
	case set["database-url"]:
		return checkDatabaseURL("--database-url", *d.url)
	case set["db"]:
		return *d.path, nil
	}
	envPath, envURL := os.Getenv(dbEnv), os.Getenv(databaseURLEnv)
	switch {
	case envPath != "" && envURL != "":
		return "", usageError{dbEnv + " (a SQLite file) and " + databaseURLEnv + " (PostgreSQL) are both set; unset one of them"}
	case envURL != "":
		return checkDatabaseURL(databaseURLEnv, envURL)
	case envPath != "":
		return envPath, nil
	}
	return d.defaultPath, nil
}

// checkDatabaseURL refuses what is not a PostgreSQL URL without echoing
// it: it may hold a password.
func checkDatabaseURL(from, u string) (string, error) {
	if !store.IsPostgresURL(u) {
		return "", usageError{fmt.Sprintf("%s must be a PostgreSQL URL, postgres://USER[:PASS]@HOST:PORT/DB?sslmode=disable "+
			"(for a SQLite file, use --db)", from)}
	}
	return u, nil
}

// isURL reports whether a location names PostgreSQL rather than a file.
func isURL(loc string) bool { return store.IsPostgresURL(loc) }

// displayName is a location as messages show it: a URL without its
// password.
func displayName(loc string) string {
	if isURL(loc) {
		return store.RedactURL(loc)
	}
	return loc
}
