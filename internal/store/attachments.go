package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/identity"
)

// Attachment is a file sent in a chat. SubjectID is the user who uploaded
// it (empty for an agent's); MessageID and ConversationID are set once a
// message carries it.
type Attachment struct {
	ID, AppID, SubjectID, ConversationID, MessageID string
	Name, Type                                      string
	Size                                            int64
	CreatedAt                                       time.Time
}

// NewAttachment is an upload, its type already decided from its bytes
// and its data cleaned (package attachments).
type NewAttachment struct {
	AppID, SubjectID string
	Name, Type       string
	Data             []byte
}

// AttachmentQuotas bound what is kept: per user, and per app.
type AttachmentQuotas struct {
	PerUser, PerApp int64
}

// ErrAttachmentQuota refuses an upload past a quota.
var ErrAttachmentQuota = errors.New("store: attachment quota exceeded")

// AddAttachment keeps an upload, within the quotas.
func (db *DB) AddAttachment(ctx context.Context, in NewAttachment, q AttachmentQuotas) (Attachment, error) {
	a := Attachment{ID: identity.NewID("att_"), AppID: in.AppID, SubjectID: in.SubjectID, Name: in.Name, Type: in.Type,
		Size: int64(len(in.Data)), CreatedAt: fromMillis(db.now().UnixMilli())}
	var subject any
	if in.SubjectID != "" {
		subject = in.SubjectID
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		// Uploads of one app take turns, so two at once cannot both fit
		// the room that is left for one.
		if err := db.lockApp(ctx, tx, in.AppID); err != nil {
			return err
		}
		var app, user int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(size), 0) FROM attachments WHERE app_id = ?`, in.AppID).Scan(&app); err != nil {
			return err
		}
		if in.SubjectID != "" {
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(size), 0) FROM attachments WHERE subject_id = ?`, in.SubjectID).Scan(&user); err != nil {
				return err
			}
		}
		if app+a.Size > q.PerApp || in.SubjectID != "" && user+a.Size > q.PerUser {
			return ErrAttachmentQuota
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO attachments (id, app_id, subject_id, name, type, size, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.AppID, subject, a.Name, a.Type, a.Size, in.Data, a.CreatedAt.UnixMilli())
		return err
	})
	if errors.Is(err, ErrAttachmentQuota) {
		return Attachment{}, ErrAttachmentQuota
	}
	if err != nil {
		return Attachment{}, fmt.Errorf("store: add attachment: %w", err)
	}
	return a, nil
}

const attachmentColumns = `a.id, a.app_id, coalesce(a.subject_id, ''), coalesce(a.conversation_id, ''), coalesce(a.message_id, ''), a.name, a.type, a.size, a.created_at`

func scanAttachment(sc interface{ Scan(...any) error }, extra ...any) (Attachment, error) {
	var a Attachment
	var created int64
	err := sc.Scan(append([]any{&a.ID, &a.AppID, &a.SubjectID, &a.ConversationID, &a.MessageID, &a.Name, &a.Type, &a.Size, &created}, extra...)...)
	a.CreatedAt = fromMillis(created)
	return a, err
}

// UserAttachment returns an attachment the user may download: one of
// their conversations carries it, or they uploaded it and it is not sent
// yet. Anything else is ErrNotFound, whether it exists or not.
func (db *DB) UserAttachment(ctx context.Context, subjectID, id string) (Attachment, []byte, error) {
	return db.attachmentWhere(ctx, `a.id = ? AND ((a.subject_id = ? AND a.message_id IS NULL)
		OR a.conversation_id IN (SELECT id FROM conversations WHERE subject_id = ?))`, id, subjectID, subjectID)
}

// AppAttachment returns an attachment of one of the app's conversations,
// or an upload of the app's agents, for its agents.
func (db *DB) AppAttachment(ctx context.Context, appID, id string) (Attachment, []byte, error) {
	return db.attachmentWhere(ctx, `a.id = ? AND a.app_id = ? AND (a.message_id IS NOT NULL OR a.subject_id IS NULL)`, id, appID)
}

func (db *DB) attachmentWhere(ctx context.Context, where string, args ...any) (Attachment, []byte, error) {
	var data []byte
	a, err := scanAttachment(db.read.QueryRowContext(ctx, `SELECT `+attachmentColumns+`, a.data FROM attachments a WHERE `+where, args...), &data)
	if errors.Is(err, sql.ErrNoRows) {
		return Attachment{}, nil, ErrNotFound
	}
	if err != nil {
		return Attachment{}, nil, fmt.Errorf("store: attachment: %w", err)
	}
	return a, data, nil
}

// maxAttachmentsPerMessage bounds the files one message carries.
const maxAttachmentsPerMessage = 10

// ErrAttachmentUnknown refuses a message naming an attachment that is
// not the sender's unsent upload.
var ErrAttachmentUnknown = &InputError{"an attachment is unknown, not yours, or already sent; upload it again"}

// attach has message m carry the uploads ids of the uploader (a subject,
// or the app's agents when subjectID is empty), in tx.
func attach(ctx context.Context, tx txn, appID, subjectID string, ids []string, m *Message) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > maxAttachmentsPerMessage {
		return &InputError{fmt.Sprintf("a message carries at most %d attachments", maxAttachmentsPerMessage)}
	}
	owner, args := `subject_id IS NULL`, []any{m.ConversationID, m.ID, appID}
	if subjectID != "" {
		owner, args = `subject_id = ?`, append(args, subjectID)
	}
	for _, id := range ids {
		args = append(args, id)
	}
	res, err := tx.ExecContext(ctx, `UPDATE attachments SET conversation_id = ?, message_id = ?
		WHERE app_id = ? AND `+owner+` AND message_id IS NULL AND id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != int64(len(ids)) {
		return ErrAttachmentUnknown
	}
	return loadAttachments(ctx, sqlTx(tx), []*Message{m})
}

// loadAttachments fills in the attachments of msgs.
func loadAttachments(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, msgs []*Message) error {
	if len(msgs) == 0 {
		return nil
	}
	byID := map[string]*Message{}
	args := make([]any, 0, len(msgs))
	for _, m := range msgs {
		byID[m.ID] = m
		args = append(args, m.ID)
	}
	rows, err := q.QueryContext(ctx, `SELECT `+attachmentColumns+` FROM attachments a WHERE a.message_id IN (?`+strings.Repeat(", ?", len(args)-1)+`)
		ORDER BY a.created_at, a.id`, args...)
	if err != nil {
		return fmt.Errorf("attachments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAttachment(rows)
		if err != nil {
			return fmt.Errorf("attachments: %w", err)
		}
		if m := byID[a.MessageID]; m != nil {
			m.Attachments = append(m.Attachments, a)
		}
	}
	return rows.Err()
}

// PruneUnsentAttachments deletes the uploads no message carried, made
// before before (a chat closed between the upload and the send), and
// returns how many.
func (db *DB) PruneUnsentAttachments(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.write.ExecContext(ctx, `DELETE FROM attachments WHERE message_id IS NULL AND created_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: prune attachments: %w", err)
	}
	return res.RowsAffected()
}
