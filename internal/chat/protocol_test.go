package chat

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeClientFrameAccepts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ClientFrame
	}{
		{`{"type":"auth","token":"pst_x"}`, ClientFrame{Type: TypeAuth, Token: "pst_x"}},
		{`{"type":"list"}`, ClientFrame{Type: TypeList}},
		{`{"type":"open","conversation_id":"cnv_a","after_seq":7}`, ClientFrame{Type: TypeOpen, ConversationID: "cnv_a", AfterSeq: 7}},
		{`{"type":"send","client_msg_id":"m-1","body":"hi\nthere"}`, ClientFrame{Type: TypeSend, ClientMsgID: "m-1", Body: "hi\nthere"}},
		{`{"type":"send","conversation_id":"cnv_a","client_msg_id":"m_2","body":"<b>x</b>"}`, ClientFrame{Type: TypeSend, ConversationID: "cnv_a", ClientMsgID: "m_2", Body: "<b>x</b>"}},
		{`{"type":"typing","conversation_id":"cnv_a","typing":true}`, ClientFrame{Type: TypeTyping, ConversationID: "cnv_a", Typing: true}},
		{`{"type":"read","conversation_id":"cnv_a","seq":3}`, ClientFrame{Type: TypeRead, ConversationID: "cnv_a", Seq: 3}},
		{`{"type":"send","client_msg_id":"m-3","attachment_ids":["att_1","att_2"]}`, ClientFrame{Type: TypeSend, ClientMsgID: "m-3", AttachmentIDs: []string{"att_1", "att_2"}}},
	} {
		got, err := DecodeClientFrame([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestDecodeClientFrameRefuses(t *testing.T) {
	long := strings.Repeat("a", MaxBodyBytes+1)
	for _, tc := range []struct{ in, code string }{
		{``, "bad_frame"},
		{`null`, "bad_frame"},
		{`[]`, "bad_frame"},
		{`{`, "bad_frame"},
		{`{}`, "bad_frame"},
		{`{"type":"nope"}`, "bad_frame"},
		{`{"type":"list","extra":1}`, "bad_frame"},
		{`{"type":"list"} {"type":"list"}`, "bad_frame"},
		{`{"type":"auth"}`, "bad_frame"},
		{`{"type":"open"}`, "bad_frame"},
		{`{"type":"open","conversation_id":"../etc"}`, "bad_frame"},
		{`{"type":"open","conversation_id":"cnv_a","after_seq":-1}`, "bad_frame"},
		{`{"type":"open","conversation_id":"cnv_a","after_seq":"1"}`, "bad_frame"},
		{`{"type":"send","body":"hi"}`, "bad_frame"},
		{`{"type":"send","client_msg_id":"a b","body":"hi"}`, "bad_frame"},
		{`{"type":"send","client_msg_id":"` + strings.Repeat("a", 65) + `","body":"hi"}`, "bad_frame"},
		{`{"type":"send","client_msg_id":"m","body":"   "}`, "empty_message"},
		{`{"type":"send","client_msg_id":"m","body":"` + long + `"}`, "message_too_long"},
		{`{"type":"send","client_msg_id":"m","body":"bell\u0007"}`, "bad_message"},
		{`{"type":"read","conversation_id":"cnv_a","seq":-2}`, "bad_frame"},
		{"{\"type\":\"list\",\"x\":\"\xff\"}", "bad_frame"},
		{`{"type":"list","pad":"` + strings.Repeat("a", MaxFrameBytes) + `"}`, "frame_too_large"},
	} {
		_, err := DecodeClientFrame([]byte(tc.in))
		if err == nil {
			t.Errorf("%.60s: accepted", tc.in)
			continue
		}
		if err.Code != tc.code {
			t.Errorf("%.60s: code %q, want %q (%s)", tc.in, err.Code, tc.code, err.Message)
		}
	}
	_, err := DecodeClientFrame([]byte(`{"type":"send","client_msg_id":"m7","body":""}`))
	if err == nil || err.ClientMsgID != "m7" {
		t.Fatalf("a refused send must name its client_msg_id so the widget can mark it: %+v", err)
	}
}

// FuzzDecodeClientFrame: the decoder never panics, and whatever it accepts
// satisfies the limits the rest of the server relies on.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"auth","token":"pst_x"}`, `{"type":"list"}`, `{"type":"open","conversation_id":"cnv_a","after_seq":7}`,
		`{"type":"send","client_msg_id":"m-1","body":"hi"}`, `{"type":"typing","conversation_id":"c","typing":true}`,
		`{"type":"read","conversation_id":"c","seq":1}`, `{"type":"send","client_msg_id":"m","body":"\u0000"}`, `{"type":1}`, `{"Type":"LIST"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeClientFrame(data)
		if err != nil {
			if err.Code == "" || err.Message == "" {
				t.Fatalf("error without code or message: %+v", err)
			}
			if _, jerr := json.Marshal(errorFrame{Type: "error", Code: err.Code, Message: err.Message}); jerr != nil {
				t.Fatal(jerr)
			}
			return
		}
		switch fr.Type {
		case TypeAuth, TypeList, TypeOpen, TypeSend, TypeTyping, TypeRead:
		default:
			t.Fatalf("accepted unknown type %q", fr.Type)
		}
		if fr.Type == TypeSend {
			if len(fr.Body) > MaxBodyBytes || strings.TrimSpace(fr.Body) == "" || !utf8.ValidString(fr.Body) {
				t.Fatalf("accepted body %q", fr.Body)
			}
			if fr.ClientMsgID == "" || len(fr.ClientMsgID) > maxClientIDBytes {
				t.Fatalf("accepted client_msg_id %q", fr.ClientMsgID)
			}
		}
		if len(fr.ConversationID) > maxConvIDBytes || fr.AfterSeq < 0 || fr.Seq < 0 {
			t.Fatalf("accepted %+v", fr)
		}
	})
}
