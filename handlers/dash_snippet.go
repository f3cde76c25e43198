package handlers

import (
	"fmt"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

// Snippet is the install snippet for an app, as the settings page shows it.
func Snippet(publicURL, appID string) string {
	return fmt.Sprintf(`<script>
  window.parleySettings = {
    app_id: %q,
    // For signed-in users; leave these out for anonymous visitors:
    user_id: "USER_ID",
    user_hash: "USER_HASH", // computed by your server, see below
    name: "USER_NAME",
    email: "USER_EMAIL"
  };
</script>
<script async src="%s/widget.js"></script>`, appID, publicURL)
}

// HashExamples shows how to compute user_hash in five languages, with the
// app's id filled in. They read the secret from the environment rather
// than showing it, so a copied example never carries a secret along; and
// they name the app only by its id, which Parley made, because an app's
// name is whatever a member typed and could break out of a comment.
func HashExamples(app *store.App) []templates.CodeExample {
	head := func(comment string) string {
		return fmt.Sprintf("%s Parley app %s: user_hash = hex(HMAC-SHA256(identity secret, user_id))\n", comment, app.ID)
	}
	return []templates.CodeExample{
		{Lang: "Go", Code: head("//") + `mac := hmac.New(sha256.New, []byte(os.Getenv("PARLEY_IDENTITY_SECRET")))
mac.Write([]byte(userID))
userHash := hex.EncodeToString(mac.Sum(nil))`},
		{Lang: "Node", Code: head("//") + `const crypto = require("crypto");
const userHash = crypto.createHmac("sha256", process.env.PARLEY_IDENTITY_SECRET)
  .update(String(userId)).digest("hex");`},
		{Lang: "Python", Code: head("#") + `import hashlib, hmac, os
user_hash = hmac.new(os.environ["PARLEY_IDENTITY_SECRET"].encode(), str(user_id).encode(), hashlib.sha256).hexdigest()`},
		{Lang: "Ruby", Code: head("#") + `require "openssl"
user_hash = OpenSSL::HMAC.hexdigest("SHA256", ENV.fetch("PARLEY_IDENTITY_SECRET"), user_id.to_s)`},
		{Lang: "PHP", Code: "<?php\n" + head("//") + `$userHash = hash_hmac('sha256', (string) $userId, getenv('PARLEY_IDENTITY_SECRET'));`},
	}
}

// JWTSnippet is the install snippet for a page that hands the widget an
// identity JWT instead of a user_hash.
func JWTSnippet(publicURL, appID string) string {
	return fmt.Sprintf(`<script>
  window.parleySettings = {
    app_id: %q,
    // For signed-in users; leave it out for anonymous visitors:
    user_jwt: "USER_JWT" // minted by your server for this page, see below
  };
</script>
<script async src="%s/widget.js"></script>`, appID, publicURL)
}

// JWTExamples show how to mint an identity JWT in five languages: HS256,
// kid = the current secret's id, aud = the app's id, ten minutes, a random
// single-use jti. As in HashExamples, the secret comes from the
// environment and only ids Parley made are filled in.
func JWTExamples(app *store.App) []templates.CodeExample {
	head := func(comment string) string {
		return fmt.Sprintf("%s Parley app %s: an identity JWT for the signed-in user, minted for each page.\n", comment, app.ID)
	}
	return []templates.CodeExample{
		{Lang: "Go", Code: head("//") + fmt.Sprintf(`// github.com/golang-jwt/jwt/v5
import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func parleyUserJWT(userID, email, name string) (string, error) {
	jti := make([]byte, 16)
	rand.Read(jti)
	now := time.Now()
	claims := jwt.MapClaims{
		"sub": userID,
		"aud": %q,
		"iat": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
		"jti": hex.EncodeToString(jti),
	}
	if email != "" { // optional, shown to your agents as signed
		claims["email"] = email
	}
	if name != "" {
		claims["name"] = name
	}
	token := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	token.Header["kid"] = %q
	return token.SignedString([]byte(os.Getenv("PARLEY_IDENTITY_SECRET")))
}`, app.ID, app.IdentitySecretID)},
		{Lang: "Node", Code: head("//") + fmt.Sprintf(`// npm install jsonwebtoken
const crypto = require("crypto");
const jwt = require("jsonwebtoken");

const userJwt = jwt.sign(
  // email and name are optional: undefined or null when unknown, not ""
  { sub: String(userId), email: userEmail, name: userName, jti: crypto.randomUUID() },
  process.env.PARLEY_IDENTITY_SECRET,
  { algorithm: "HS256", keyid: %q, audience: %q, expiresIn: "10m" } // iat is set for you
);`, app.IdentitySecretID, app.ID)},
		{Lang: "Python", Code: head("#") + fmt.Sprintf(`# pip install PyJWT
import os, time, uuid
import jwt

now = int(time.time())
user_jwt = jwt.encode(
    # email and name are optional: None when unknown, not ""
    {"sub": str(user_id), "aud": %q, "iat": now, "exp": now + 600,
     "jti": uuid.uuid4().hex, "email": email, "name": name},
    os.environ["PARLEY_IDENTITY_SECRET"],
    algorithm="HS256",
    headers={"kid": %q},
)`, app.ID, app.IdentitySecretID)},
		{Lang: "Ruby", Code: head("#") + fmt.Sprintf(`# gem install jwt
require "jwt"
require "securerandom"

now = Time.now.to_i
user_jwt = JWT.encode(
  # email and name are optional: nil when unknown, not ""
  { sub: user_id.to_s, aud: %q, iat: now, exp: now + 600,
    jti: SecureRandom.hex(16), email: email, name: name },
  ENV.fetch("PARLEY_IDENTITY_SECRET"),
  "HS256",
  { "kid" => %q }
)`, app.ID, app.IdentitySecretID)},
		{Lang: "PHP", Code: "<?php\n" + head("//") + fmt.Sprintf(`// composer require firebase/php-jwt
use Firebase\JWT\JWT;

$now = time();
$userJwt = JWT::encode([
    'sub' => (string) $userId,
    'aud' => %s,
    'iat' => $now,
    'exp' => $now + 600,
    'jti' => bin2hex(random_bytes(16)),
    'email' => $email, // optional: null when unknown, not ''
    'name' => $name,   // optional: null when unknown, not ''
], getenv('PARLEY_IDENTITY_SECRET'), 'HS256', %s);`, phpString(app.ID), phpString(app.IdentitySecretID))},
	}
}

// phpString quotes an id Parley made (letters, digits, "_") for PHP.
func phpString(s string) string { return "'" + s + "'" }
