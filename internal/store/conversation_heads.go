package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ConversationHead is where a conversation stands: whose it is and its
// last seq. A node that follows conversations for its sockets compares it
// with the last seq it delivered.
type ConversationHead struct {
	ID, AppID, SubjectID string
	LastSeq              int64
}

// ConversationByID looks a conversation up by id alone. It is for the
// node's own delivery (an id heard from another node, to be routed by
// what the database says, not by what the hint says), never for an id a
// client sent.
func (db *DB) ConversationByID(ctx context.Context, id string) (Conversation, error) {
	return db.conversationWhere(ctx, `c.id = ?`, id)
}

// maxHeadApps bounds the apps of one ActiveConversations query.
const maxHeadApps = 200

// ActiveConversations returns the conversations of the apps that had a
// message at or after since.
func (db *DB) ActiveConversations(ctx context.Context, appIDs []string, since time.Time) ([]ConversationHead, error) {
	var out []ConversationHead
	for len(appIDs) > 0 {
		chunk := appIDs[:min(len(appIDs), maxHeadApps)]
		appIDs = appIDs[len(chunk):]
		args := make([]any, 0, len(chunk)+1)
		for _, id := range chunk {
			args = append(args, id)
		}
		args = append(args, since.UnixMilli())
		// Not prepared: the number of placeholders varies.
		rows, err := db.read.QueryContext(ctx, `SELECT id, app_id, subject_id, last_seq FROM conversations
			WHERE app_id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`) AND last_message_at >= ?`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: active conversations: %w", err)
		}
		for rows.Next() {
			var h ConversationHead
			if err := rows.Scan(&h.ID, &h.AppID, &h.SubjectID, &h.LastSeq); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: active conversations: %w", err)
			}
			out = append(out, h)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: active conversations: %w", err)
		}
	}
	return out, nil
}
