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
