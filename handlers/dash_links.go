package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/password"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

// Password resets and invitations by e-mail, when the server sends
// e-mail. The link's token travels in its #fragment, which browsers never
// send to a server (so it is in no log, proxy or Referer); the page's
// script moves it into the form, and the e-mail also gives it as a code to
// paste where scripts do not run.

type linkStore interface {
	CreateResetLink(ctx context.Context, email string) (string, store.Owner, error)
	ResetPassword(ctx context.Context, token, passwordHash string) (store.Owner, error)
	AcceptInvite(ctx context.Context, token, name, passwordHash string) (store.Owner, string, error)
}

// OwnerLinks serves /forgot, /reset and /invite.
type OwnerLinks struct {
	Pages
	Store linkStore
	Auth  *OwnerAuth // its throttles, and signing the invited owner in
	// Mail sends the links; nil when the server sends no e-mail.
	Mail      *mail.Sender
	PublicURL string
}

// mailTimeout bounds the wait for the SMTP server within a request.
const mailTimeout = 15 * time.Second

func (h *OwnerLinks) view(email, msg, notice string) templates.LinkView {
	return templates.LinkView{ScriptURL: h.ScriptURL, StyleURL: h.StyleURL, Email: email, Error: msg, Notice: notice, MailOn: h.Mail != nil}
}

// ForgotForm serves GET /forgot.
func (h *OwnerLinks) ForgotForm(c echo.Context) error {
	return render(c, http.StatusOK, templates.ForgotPage(h.view("", "", "")))
}

// Forgot serves POST /forgot (email). The answer is the same whether an
// account has the address or not; requests are throttled per network and
// per address, so nobody can mail-bomb an owner.
func (h *OwnerLinks) Forgot(c echo.Context) error {
	email := strings.TrimSpace(postValue(c, "email"))
	if h.Mail == nil {
		return render(c, http.StatusNotFound, templates.ForgotPage(h.view(email, "", "")))
	}
	account := strings.ToLower(email)
	if len(account) > 254 {
		account = account[:254]
	}
	ctx, now := c.Request().Context(), h.Auth.Clock()
	buckets := []store.Bucket{h.Auth.ipBucket(ratelimit.ClientKey(c.RealIP())),
		{Key: "reset-account:" + account, Burst: 3, Every: 20 * time.Minute}}
	allowed, _, err := h.Auth.takeTokens(ctx, now, buckets)
	if err != nil {
		return err
	}
	if !allowed {
		return render(c, http.StatusTooManyRequests, templates.ForgotPage(h.view(email, "Too many requests for this address or from your network. Try again later.", "")))
	}
	sent := "If an account uses " + email + ", a link to choose a new password is on its way. It works once, for an hour."
	token, owner, err := h.Store.CreateResetLink(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return render(c, http.StatusOK, templates.ForgotPage(h.view("", "", sent)))
	}
	if err != nil {
		return err
	}
	// Sent after answering, so that the answer takes as long, and says
	// the same, whether an account has the address or not.
	go func() {
		mctx, cancel := context.WithTimeout(context.Background(), mailTimeout)
		defer cancel()
		err := h.Mail.Send(mctx, mail.Message{To: owner.Email, Subject: "Choose a new Parley password",
			Text: fmt.Sprintf("Someone (hopefully you) asked to choose a new password for the Parley dashboard account %s.\n\n"+
				"Choose it here, within the hour:\n%s/reset#%s\n\nOr open %s/reset and paste this code:\n%s\n\n"+
				"If it was not you, ignore this e-mail: your password stays as it is.\n", owner.Email, h.PublicURL, token, h.PublicURL, token)})
		if err != nil {
			h.Auth.Log.Error("password reset e-mail", "err", err)
		}
	}()
	return render(c, http.StatusOK, templates.ForgotPage(h.view("", "", sent)))
}

// ResetForm serves GET /reset.
func (h *OwnerLinks) ResetForm(c echo.Context) error {
	return render(c, http.StatusOK, templates.ResetPage(h.view("", "", "")))
}

// Reset serves POST /reset (token, password): the new password, once.
// Every sign-in of the account ends.
func (h *OwnerLinks) Reset(c echo.Context) error {
	token, pw := strings.TrimSpace(postValue(c, "token")), postValue(c, "password")
	if err := password.CheckPolicy(pw); err != nil {
		return render(c, http.StatusBadRequest, templates.ResetPage(h.view("", err.Error(), "")))
	}
	if ok, err := h.hashAllowed(c); !ok {
		if err != nil {
			return err
		}
		return render(c, http.StatusTooManyRequests, templates.ResetPage(h.view("", tooMany, "")))
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	owner, err := h.Store.ResetPassword(c.Request().Context(), token, hash)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return render(c, http.StatusBadRequest, templates.ResetPage(h.view("", ie.Msg, "")))
	}
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.ResetPage(h.view(owner.Email, "", "Your password is changed, and every earlier sign-in has ended. Sign in with the new one.")))
}

// InviteForm serves GET /invite.
func (h *OwnerLinks) InviteForm(c echo.Context) error {
	return render(c, http.StatusOK, templates.InvitePage(h.view("", "", "")))
}

// Invite serves POST /invite (token, name, password): the account is
// made, joins the app it was invited to, and is signed in.
func (h *OwnerLinks) Invite(c echo.Context) error {
	token, name, pw := strings.TrimSpace(postValue(c, "token")), strings.TrimSpace(postValue(c, "name")), postValue(c, "password")
	fail := func(msg string) error {
		v := h.view("", msg, "")
		v.Name = name
		return render(c, http.StatusBadRequest, templates.InvitePage(v))
	}
	if name == "" {
		return fail("Please enter your name.")
	}
	if err := password.CheckPolicy(pw); err != nil {
		return fail(err.Error())
	}
	if ok, err := h.hashAllowed(c); !ok {
		if err != nil {
			return err
		}
		return fail(tooMany)
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	owner, appID, err := h.Store.AcceptInvite(c.Request().Context(), token, name, hash)
	if ie := new(store.InputError); errors.As(err, &ie) {
		if strings.Contains(ie.Msg, "already exists") {
			return fail("An account already uses this address: sign in, and ask a member of the app to add you.")
		}
		return fail(ie.Msg)
	}
	if err != nil {
		return err
	}
	if err := h.Auth.startSession(c, owner.ID); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, appPath(appID))
}

const tooMany = "Too many attempts from your network. Try again later."

// hashAllowed takes a token from the network's sign-in budget before a
// password is hashed, which costs the server, as Signup does: a flood of
// made-up links cannot keep it hashing.
func (h *OwnerLinks) hashAllowed(c echo.Context) (bool, error) {
	ok, _, err := h.Auth.takeTokens(c.Request().Context(), h.Auth.Clock(), []store.Bucket{h.Auth.ipBucket(ratelimit.ClientKey(c.RealIP()))})
	return ok, err
}
