// cel-eval: evaluates HyperFleet adapter CEL expressions for the cluster tests
// (harness/consumer.py). Built by ../build.sh; not imported by any project code.
module github.com/openshift-hyperfleet/status-reporter/hack/hyperfleet/cel

go 1.26.0

// The cel-go that hyperfleet-adapter v0.1.x and v0.2.0 build with (its go.mod), the
// releases whose config format harness/hyperfleet's copies use. build.sh reads it here.
require github.com/google/cel-go v0.26.1

require google.golang.org/protobuf v1.34.2

require (
	cel.dev/expr v0.24.0 // indirect
	github.com/antlr4-go/antlr/v4 v4.13.0 // indirect
	github.com/stoewer/go-strcase v1.2.0 // indirect
	golang.org/x/exp v0.0.0-20230515195305-f3d0a9c9a5cc // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20240826202546-f6391c0de4c7 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20240826202546-f6391c0de4c7 // indirect
)
