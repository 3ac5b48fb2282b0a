// The sandbox ("pause") program of the single-node cluster; see ../images.sh.
module github.com/openshift-hyperfleet/status-reporter/hack/cluster/pause

go 1.26.0
