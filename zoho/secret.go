package zoho

import (
	"fmt"
	"log/slog"
)

const redacted = "REDACTED"

// Secret is a credential (a client secret or a refresh token). Its value is
// redacted by type: fmt with any verb, slog and text marshalling all print
// "REDACTED", so a Config can be logged or dumped without leaking it. Only the
// client reads the value, by converting it back to a string.
type Secret string

// String returns "REDACTED".
func (Secret) String() string { return redacted }

// GoString returns "REDACTED" in quotes, for %#v.
func (Secret) GoString() string { return `"` + redacted + `"` }

// Format prints "REDACTED" whatever the verb, so %s, %v, %q, %x and %#v are all safe.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprint(f, `"`+redacted+`"`)
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, s.GoString())
			return
		}
		fmt.Fprint(f, redacted)
	default:
		fmt.Fprint(f, redacted)
	}
}

// LogValue makes slog print "REDACTED".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText encodes "REDACTED", so JSON and YAML dumps of a Config hide the value.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalText keeps the text as the secret, so config files can still set it.
func (s *Secret) UnmarshalText(b []byte) error {
	*s = Secret(b)
	return nil
}

// IsZero reports whether the secret is unset.
func (s Secret) IsZero() bool { return s == "" }
