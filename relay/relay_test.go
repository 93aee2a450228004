package relay

import (
	"strings"
	"testing"

	"github.com/mapt-go/mapt/domainfile"
)

func TestTranslatorConfig(t *testing.T) {
	f, err := domainfile.Load("../domainfile/testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := translatorConfig(f)
	if err != nil || len(cfg.FMRs) != 1 || cfg.DMR.String() != "64:ff9b::/96" || cfg.Capacity != 1024 {
		t.Fatalf("cfg = %+v, %v", cfg, err)
	}
	// Two DMRs cannot share one translator.
	f, err = domainfile.Load("../domainfile/testdata/multi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := translatorConfig(f); err == nil || !strings.Contains(err.Error(), "different DMRs") {
		t.Fatalf("two DMRs: %v", err)
	}
}
