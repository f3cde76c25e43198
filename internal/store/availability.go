package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/internal/hours"
)

// Availability settings: when an app's team is usually there, and what
// the widget says about it.
type Availability struct {
	TimeZone string
	Hours    hours.Week
	// Greeting opens an empty conversation; AwayMessage is shown outside
	// the hours (users can still write); ReplyTime is the "usually
	// replies within …" choice: "", "minutes", "hour", "hours" or "day".
	Greeting, AwayMessage, ReplyTime string
}

// ReplyTimes are the "usually replies within …" choices; "" says nothing.
var ReplyTimes = []string{"", "minutes", "hour", "hours", "day"}

// Location is the availability's time zone (UTC if it no longer loads).
func (a Availability) Location() *time.Location {
	loc, err := time.LoadLocation(a.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// checkAvailability refuses settings an owner could not have meant.
func checkAvailability(a Availability) error {
	if _, err := time.LoadLocation(a.TimeZone); err != nil || a.TimeZone == "" || a.TimeZone == "Local" {
		return &InputError{fmt.Sprintf("%q is not a time zone; use a name like Europe/Berlin or America/New_York", a.TimeZone)}
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"the greeting", a.Greeting, 500}, {"the away message", a.AwayMessage, 1000}} {
		if !utf8.ValidString(f.v) || utf8.RuneCountInString(f.v) > f.max {
			return &InputError{fmt.Sprintf("%s is at most %d characters of text", f.name, f.max)}
		}
	}
	if !slices.Contains(ReplyTimes, a.ReplyTime) {
		return &InputError{"choose how soon the team usually replies from the list"}
	}
	return nil
}

// SetAvailability saves the app's availability settings.
func (db *DB) SetAvailability(ctx context.Context, appID string, a Availability) error {
	if err := checkAvailability(a); err != nil {
		return err
	}
	res, err := db.write.ExecContext(ctx, `UPDATE apps SET time_zone = ?, business_hours = ?, greeting = ?, away_message = ?, reply_time = ? WHERE id = ?`,
		a.TimeZone, a.Hours.String(), a.Greeting, a.AwayMessage, a.ReplyTime, appID)
	if err != nil {
		return fmt.Errorf("store: availability: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Presence is what the widget says about the team at a moment.
type Presence struct {
	Availability
	// Open says the moment is within the hours (always, without hours);
	// AgentsOnline that an agent of the app has the inbox open.
	Open, AgentsOnline bool
}

// PresenceAt reads the app's availability and whether agents are
// online, at now.
func (db *DB) PresenceAt(ctx context.Context, appID string, now time.Time) (Presence, error) {
	var p Presence
	var week string
	err := db.read.QueryRowContext(ctx, `SELECT time_zone, business_hours, greeting, away_message, reply_time,
			EXISTS (SELECT 1 FROM agent_presence WHERE app_id = apps.id AND expires_at > ?)
		FROM apps WHERE id = ?`, now.UnixMilli(), appID).
		Scan(&p.TimeZone, &week, &p.Greeting, &p.AwayMessage, &p.ReplyTime, &p.AgentsOnline)
	if err == sql.ErrNoRows {
		return p, ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("store: presence: %w", err)
	}
	p.Hours, _ = hours.Parse(week)
	p.Open = p.Hours.OpenAt(now, p.Location())
	return p, nil
}

// AgentPresent records that the owner has the app's inbox open on node,
// until until (the node refreshes it while the inbox stays open). What
// the app's users wrote meanwhile has now reached an agent: delivered.
func (db *DB) AgentPresent(ctx context.Context, appID, ownerID, node string, until time.Time) error {
	_, err := db.write.ExecContext(ctx, `INSERT INTO agent_presence (app_id, owner_id, node, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (app_id, owner_id, node) DO UPDATE SET expires_at = excluded.expires_at`, appID, ownerID, node, until.UnixMilli())
	if err != nil {
		return fmt.Errorf("store: agent presence: %w", err)
	}
	// Apart, so that presence stands even if this fails; an index holds
	// just the conversations it changes.
	_, err = db.write.ExecContext(ctx, `UPDATE conversations SET agent_delivered_seq = last_seq WHERE app_id = ? AND agent_delivered_seq < last_seq`, appID)
	if err != nil {
		return fmt.Errorf("store: delivered marks: %w", err)
	}
	return nil
}

// RefreshAgentPresence moves the owner's presence on node to until, if
// it is still recorded.
func (db *DB) RefreshAgentPresence(ctx context.Context, appID, ownerID, node string, until time.Time) error {
	_, err := db.write.ExecContext(ctx, `UPDATE agent_presence SET expires_at = ? WHERE app_id = ? AND owner_id = ? AND node = ?`,
		until.UnixMilli(), appID, ownerID, node)
	if err != nil {
		return fmt.Errorf("store: agent presence: %w", err)
	}
	return nil
}

// AgentAbsent records that the owner no longer has the app's inbox open
// on node.
func (db *DB) AgentAbsent(ctx context.Context, appID, ownerID, node string) error {
	if _, err := db.write.ExecContext(ctx, `DELETE FROM agent_presence WHERE app_id = ? AND owner_id = ? AND node = ?`, appID, ownerID, node); err != nil {
		return fmt.Errorf("store: agent presence: %w", err)
	}
	return nil
}

// OnlineAgents are the app's members with the inbox open, by name.
func (db *DB) OnlineAgents(ctx context.Context, appID string, now time.Time) ([]Owner, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT o.id, o.email, o.name, o.created_at FROM owners o
		WHERE o.id IN (SELECT owner_id FROM agent_presence WHERE app_id = ? AND expires_at > ?) ORDER BY o.name, o.email`, appID, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: online agents: %w", err)
	}
	defer rows.Close()
	var out []Owner
	for rows.Next() {
		o, err := scanOwner(rows)
		if err != nil {
			return nil, fmt.Errorf("store: online agents: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
