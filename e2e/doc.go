// Package e2e holds Parley's end-to-end tests: a real server and SQLite
// database, a host page on another origin, and headless Chromium driving the
// loader and the chat frame through chromedp. The tests skip under -short
// and when no Chromium is installed (set CHROMIUM_PATH to point at one).
// A failing test prints the server log and the browser console; E2E_LOG=1
// prints them for passing tests too.
package e2e
