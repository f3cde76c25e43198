// Package demoshop is the demo's stand-in for a site owner's website: a
// page on its own origin that embeds Parley, a "backend" that computes
// a short-lived identity JWT with the identity secret, and a small agent page that answers
// through Parley's server API with the app's API key.
package demoshop

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/a-h/templ"
	"github.com/golang-jwt/jwt/v5"
)

//go:embed assets
var assets embed.FS

// User is one of the shop's demo customers.
type User struct {
	ID, Name, Email string
}

// Users are the people you can "log in" as.
var Users = []User{
	{ID: "u_alice", Name: "Alice Adams", Email: "alice@example.com"},
	{ID: "u_bob", Name: "Bob Brown", Email: "bob@example.com"},
}

// Shop serves the demo shop. Its secrets stay on this server: the page
// only ever receives the identity JWT the backend signed.
type Shop struct {
	ParleyURL string
	AppID     string
	// IdentitySecretID names the secret in the identity JWTs the shop mints
	// (their kid).
	IdentitySecretID string
	IdentitySecret   string
	APIKey           string
	client           *http.Client
}

// Handler returns the shop's routes.
func (s *Shop) Handler() http.Handler {
	s.client = &http.Client{Timeout: 5 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /agent", s.agent)
	mux.HandleFunc("POST /agent/reply", s.reply)
	mux.Handle("GET /assets/", http.FileServerFS(assets))
	return s.withCSP(mux)
}

// withCSP gives every page the strict policy a careful site has, plus the
// two lines Parley needs (README, "Content Security Policy on your site"):
// the loader in script-src and the chat frame in frame-src. Nothing is
// inline, so no 'unsafe-inline' is needed either.
func (s *Shop) withCSP(next http.Handler) http.Handler {
	policy := "default-src 'self'; script-src 'self' " + s.ParleyURL + "; frame-src " + s.ParleyURL +
		"; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", policy)
		next.ServeHTTP(w, r)
	})
}

func (s *Shop) current(r *http.Request) *User {
	c, err := r.Cookie("demo_user")
	if err != nil {
		return nil
	}
	for i := range Users {
		if Users[i].ID == c.Value {
			return &Users[i]
		}
	}
	return nil
}

func (s *Shop) home(w http.ResponseWriter, r *http.Request) {
	settings := map[string]string{"app_id": s.AppID}
	u := s.current(r)
	if u != nil {
		token, err := s.userJWT(u, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		settings["user_jwt"] = token
	}
	render(w, r, Home(HomeView{User: u, Users: Users, Settings: settings, WidgetURL: s.ParleyURL + "/widget.js"}))
}

// userJWT is what a site owner's backend adds: an identity JWT for the
// logged-in user, signed with the app's identity secret and naming it by
// its id (kid), valid for 10 minutes. Email and name inside it show as
// signed in Parley's inbox. It has no jti: that would make it single-use,
// and the widget needs it again when it reconnects after a reload of its
// frame; pages that mint a token per widget boot can add one.
func (s *Shop) userJWT(u *User, now time.Time) (string, error) {
	token := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":   u.ID,
		"aud":   s.AppID,
		"iat":   now.Unix(),
		"exp":   now.Add(10 * time.Minute).Unix(),
		"email": u.Email,
		"name":  u.Name,
	})
	token.Header["kid"] = s.IdentitySecretID
	return token.SignedString([]byte(s.IdentitySecret))
}

func (s *Shop) login(w http.ResponseWriter, r *http.Request) {
	id := r.FormValue("user")
	for _, u := range Users {
		if u.ID == id {
			http.SetCookie(w, &http.Cookie{Name: "demo_user", Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Shop) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: "demo_user", Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// agent lists the app's conversations through Parley's server API.
func (s *Shop) agent(w http.ResponseWriter, r *http.Request) {
	var list struct {
		Conversations []AgentConversation `json:"conversations"`
	}
	if err := s.api(http.MethodGet, "/api/v1/conversations", nil, &list); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for i := range list.Conversations {
		c := &list.Conversations[i]
		var msgs struct {
			Messages []AgentMessage `json:"messages"`
		}
		if err := s.api(http.MethodGet, "/api/v1/conversations/"+c.ID+"/messages", nil, &msgs); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c.Messages = msgs.Messages
	}
	render(w, r, Agent(list.Conversations))
}

func (s *Shop) reply(w http.ResponseWriter, r *http.Request) {
	body := map[string]string{"body": r.FormValue("body"), "author_name": "Demo shop support"}
	if err := s.api(http.MethodPost, "/api/v1/conversations/"+r.FormValue("conversation_id")+"/messages", body, nil); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, "/agent", http.StatusSeeOther)
}

func (s *Shop) api(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.ParleyURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("parley API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("parley API: %s: %s", resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// AgentConversation is a conversation as the server API returns it.
type AgentConversation struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	User   struct {
		UserID    string `json:"user_id"`
		Name      string `json:"name"`
		Email     string `json:"email"`
		Verified  bool   `json:"verified"`
		Anonymous bool   `json:"anonymous"`
	} `json:"user"`
	Messages []AgentMessage `json:"-"`
}

// AgentMessage is a message as the server API returns it.
type AgentMessage struct {
	Author     string `json:"author"`
	AuthorName string `json:"author_name"`
	Body       string `json:"body"`
}

func render(w http.ResponseWriter, r *http.Request, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := c.Render(r.Context(), w); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
