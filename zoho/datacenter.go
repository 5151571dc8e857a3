package zoho

import (
	"net/url"
	"strings"
)

// dataCenter is one of Zoho's independent regions: its accounts server (OAuth)
// and its production API domain.
type dataCenter struct {
	accounts string
	api      string
}

// dataCenters is the contract's §5 table. CA's accounts host is zohocloud.ca,
// not zoho.ca, which is why hosts are listed rather than derived from a TLD.
var dataCenters = map[string]dataCenter{
	"us": {accounts: "https://accounts.zoho.com", api: "https://www.zohoapis.com"},
	"eu": {accounts: "https://accounts.zoho.eu", api: "https://www.zohoapis.eu"},
	"in": {accounts: "https://accounts.zoho.in", api: "https://www.zohoapis.in"},
	"au": {accounts: "https://accounts.zoho.com.au", api: "https://www.zohoapis.com.au"},
	"jp": {accounts: "https://accounts.zoho.jp", api: "https://www.zohoapis.jp"},
	"ca": {accounts: "https://accounts.zohocloud.ca", api: "https://www.zohoapis.ca"},
	"sa": {accounts: "https://accounts.zoho.sa", api: "https://www.zohoapis.sa"},
	"cn": {accounts: "https://accounts.zoho.com.cn", api: "https://www.zohoapis.com.cn"},
}

// acceptsAPIDomain reports whether an api_domain from a token reply belongs to
// the data centre: https and www., sandbox. or developer. in front of the DC's
// zohoapis domain. A token must never be sent to any other host.
func (dc dataCenter) acceptsAPIDomain(u *url.URL) bool {
	want, err := url.Parse(dc.api)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" {
		return false
	}
	suffix := strings.TrimPrefix(want.Host, "www.")
	host := strings.ToLower(u.Hostname())
	for _, p := range []string{"www.", "sandbox.", "developer."} {
		if host == p+suffix {
			return true
		}
	}
	return false
}
