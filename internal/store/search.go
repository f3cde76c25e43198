package store

import (
	"strings"
	"unicode"
)

// maxSearchWords bounds a search: each word is a term for the index.
const maxSearchWords = 8

// searchWords splits what an agent typed into the words the indexes hold:
// runs of letters and digits, lower-cased. Everything else separates them,
// so "ann@example.com" is ann, example and com, as both indexes split it.
func searchWords(q string) []string {
	words := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(words) > maxSearchWords {
		words = words[:maxSearchWords]
	}
	return words
}

// searchExpr is the text PostgreSQL's GIN indexes hold for a column
// expression (migrations/postgres/0014_search.sql): the query must use the
// very same expression for the index to serve it.
func searchExpr(text string) string {
	return `to_tsvector('simple', translate(` + text + `, '@._-+/:', '       '))`
}

// searchFilter is the condition that keeps the app's conversations
// (aliased c) whose user's name, e-mail or user_id, or one of whose
// messages, has every word, each as a word or the start of one; and its
// arguments. Its subqueries stand alone (they do not refer to c), so each
// runs once, from its full-text index, rather than once per conversation.
func (db *DB) searchFilter(appID string, words []string) (string, []any) {
	if db.postgres {
		// Words are letters and digits only: nothing in them is tsquery
		// syntax.
		q := strings.Join(words, ":* & ") + ":*"
		// Neither subquery names the app: c.app_id does, and the full-text
		// index is then the only way into subjects and messages.
		return ` AND (c.subject_id IN (SELECT id FROM subjects WHERE ` + searchExpr(`name || ' ' || email || ' ' || user_id`) + ` @@ to_tsquery('simple', ?))
			OR c.id IN (SELECT conversation_id FROM messages WHERE ` + searchExpr(`body`) + ` @@ to_tsquery('simple', ?)))`, []any{q, q}
	}
	terms := make([]string, len(words))
	for i, w := range words {
		terms[i] = `"` + w + `"*` // quoted: a word like "and" or "near" is a word, not an operator
	}
	q := strings.Join(terms, " ")
	return ` AND (c.subject_id IN (SELECT subject_id FROM search_subjects WHERE search_subjects MATCH ? AND app_id = ?)
		OR c.id IN (SELECT conversation_id FROM search_messages WHERE search_messages MATCH ? AND app_id = ?))`, []any{q, appID, q, appID}
}
