package main

import "testing"

func TestPrintableNeutralisesTerminalControl(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain  text\n here", "plain text here"},
		{"\x1b[2Jclear", `\u001b[2Jclear`},
		{"bell\x07", `bell\u0007`},
		{"nul\x00x", `nul\u0000x`},
		{"c1\u009bcsi", `c1\u009bcsi`},
		{"line\u2028sep", "line sep"},
		{"héllo <b>", "héllo <b>"},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
