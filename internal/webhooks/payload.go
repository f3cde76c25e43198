package webhooks

import "time"

// Payload is the JSON body of every webhook, in the shape Standard
// Webhooks recommends: the event's type, when it happened, and its data.
// docs/webhooks.md and the OpenAPI description's "webhooks" show it.
type Payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is what an event is about. Message is set for message.created
// only.
type Data struct {
	App          App          `json:"app"`
	Conversation Conversation `json:"conversation"`
	User         User         `json:"user"`
	Message      *Message     `json:"message,omitempty"`
}

// App names the app the event happened in.
type App struct {
	ID string `json:"id"`
}

// Conversation is the conversation as it is after the event.
type Conversation struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// User is the conversation's user. ID is Parley's; UserID is the site's
// own id for the user when the page gave one, which only Verified makes
// trustworthy. Email is there only when it was signed (an identity JWT's
// email claim, or a user_hash made over the email): an email a page
// merely claims is never passed on as the user's.
type User struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id,omitempty"`
	Verified bool   `json:"verified"`
	Email    string `json:"email,omitempty"`
}

// Message is a message, from the user or from the site's side (an agent
// in the dashboard or a backend through the server API).
type Message struct {
	ID         string    `json:"id"`
	Seq        int64     `json:"seq"`
	Author     string    `json:"author"`
	AuthorName string    `json:"author_name,omitempty"`
	Body       string    `json:"body"`
	CreatedAt  time.Time `json:"created_at"`
}
