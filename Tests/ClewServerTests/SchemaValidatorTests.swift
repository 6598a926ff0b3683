import ClewModel
import ClewProjections
import Foundation
import Testing

@testable import ClewServer

/// The OpenLineage validator against the built-in spec, in process: what it accepts, and for what it
/// refuses, the exact path and message a producer's operator reads.
@Suite("OpenLineage schema validator")
struct SchemaValidatorTests {
    static let schema = Result { try OpenLineageSchema.embedded() }

    static let producer = "https://github.com/apache/airflow/tree/providers-openlineage/2.0.0"
    static let schemaFacet =
        #"{"_producer":"\#(producer)","_schemaURL":"https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet","fields":[{"name":"id","type":"BIGINT"},{"name":"amount","type":"DECIMAL(12,2)"}]}"#
    static let parentFacet =
        #"{"_producer":"\#(producer)","_schemaURL":"https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet","run":{"runId":"0190a8f2-1c2d-7a00-8000-000000000001"},"job":{"namespace":"ns","name":"dag"}}"#

    /// A RunEvent as Airflow's provider sends it, with parts replaced by `edit`.
    static func runEvent(_ edit: (String) -> String = { $0 }) -> String {
        edit(
            #"{"eventType":"COMPLETE","eventTime":"2026-11-21T10:00:05.000Z","producer":"\#(producer)","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent","#
                + #""run":{"runId":"0190a8f2-1c2d-7a00-8000-0000000000aa","facets":{"parent":\#(parentFacet)}},"job":{"namespace":"ns","name":"dag.task"},"#
                + #""inputs":[{"namespace":"postgres://db:5432","name":"shop.orders","facets":{"schema":\#(schemaFacet)}}],"#
                + #""outputs":[{"namespace":"s3://lake","name":"orders_clean","facets":{"schema":\#(schemaFacet)},"outputFacets":{"outputStatistics":{"_producer":"\#(producer)","_schemaURL":"https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet","rowCount":10}}}]}"#)
    }

    /// A run event carrying Clew's `clew_steps` run facet with `steps`.
    static func clewSteps(_ steps: String) -> String {
        runEvent { $0.replacingOccurrences(of: #""facets":{"parent""#, with: #""facets":{"clew_steps":{"_producer":"https://clew","_schemaURL":"https://clew/python.md#clew_steps","steps":\#(steps)},"parent""#) }
    }

    func validate(_ text: String) throws {
        try Self.schema.get().validate(try JSONTree.parse(Data(text.utf8)))
    }

    func violation(_ text: String) throws -> String? {
        do { try validate(text) } catch let v as SchemaViolation { return v.description }
        return nil
    }

    @Test("valid run, job and dataset events pass")
    func valid() throws {
        try validate(Self.runEvent())
        try validate(#"{"eventTime":"2026-11-21T10:00:00Z","producer":"https://p","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent","job":{"namespace":"ns","name":"j"},"inputs":[],"outputs":[{"namespace":"n","name":"t","facets":{"schema":\#(Self.schemaFacet)}}]}"#)
        try validate(#"{"eventTime":"2026-11-21T10:00:00+01:00","producer":"https://p","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent","dataset":{"namespace":"n","name":"t","facets":{"schema":\#(Self.schemaFacet)}}}"#)
        try validate(Self.clewSteps(#"[{"name":"amount","value":12.5,"source":"etl.py:7"},{"name":"t","kind":"now","value":"2026-01-01T00:00:00Z","count":3}]"#))
        // A custom facet is checked only against the base facet.
        try validate(Self.runEvent { $0.replacingOccurrences(of: #""facets":{"parent""#, with: #""facets":{"acme_custom":{"_producer":"https://acme","_schemaURL":"https://acme/x.json","anything":[1,2]},"parent""#) })
    }

    @Test("each broken event is named by path and reason", arguments: [
        (#"[]"#, "$ an event must be a JSON object"),
        (runEvent { $0.replacingOccurrences(of: "0190a8f2-1c2d-7a00-8000-0000000000aa", with: "not-a-uuid") }, #"$.run.runId must be a UUID, got "not-a-uuid""#),
        (runEvent { $0.replacingOccurrences(of: #""COMPLETE""#, with: #""FINISHED""#) }, #"$.eventType must be one of "START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER", got "FINISHED""#),
        (runEvent { $0.replacingOccurrences(of: #""eventTime":"2026-11-21T10:00:05.000Z""#, with: #""eventTime":"yesterday""#) }, #"$.eventTime must be an RFC 3339 date-time, got "yesterday""#),
        (runEvent { $0.replacingOccurrences(of: #""eventTime":"2026-11-21T10:00:05.000Z""#, with: #""eventTime":"2026-13-21T10:00:05Z""#) }, #"$.eventTime must be an RFC 3339 date-time, got "2026-13-21T10:00:05Z""#),
        (runEvent { $0.replacingOccurrences(of: #""eventTime":"2026-11-21T10:00:05.000Z""#, with: #""eventTime":"2026-11-21T24:00:05+00:00""#) }, #"$.eventTime must be an RFC 3339 date-time, got "2026-11-21T24:00:05+00:00""#),
        (runEvent { $0.replacingOccurrences(of: #""name":"dag.task""#, with: #""name":7"#) }, "$.job.name must be a string, got a number"),
        (runEvent { $0.replacingOccurrences(of: #""name":"shop.orders","#, with: "") }, "$.inputs[0].name is required"),
        (runEvent { $0.replacingOccurrences(of: #""inputs":[{"#, with: #""inputs":{"x":[{"#).replacingOccurrences(of: #"}]}}}],"outputs""#, with: #"}]}}}]},"outputs""#) }, "$.inputs must be an array, got an object"),
        (runEvent { $0.replacingOccurrences(of: #"{"name":"id","type":"BIGINT"}"#, with: #"{"type":"BIGINT"}"#) }, "$.inputs[0].facets.schema.fields[0].name is required"),
        (runEvent { $0.replacingOccurrences(of: #""fields":[{"name":"id""#, with: #""fields":{"a":[{"name":"id""#).replacingOccurrences(of: #""DECIMAL(12,2)"}]}"#, with: #""DECIMAL(12,2)"}]}}"#) }, "$.inputs[0].facets.schema.fields must be an array, got an object"),
        (runEvent { $0.replacingOccurrences(of: #"{"runId":"0190a8f2-1c2d-7a00-8000-000000000001"}"#, with: #"{"runId":"x"}"#) }, #"$.run.facets.parent.run.runId must be a UUID, got "x""#),
        (runEvent { $0.replacingOccurrences(of: #""parent":{"_producer":"\#(producer)","#, with: #""parent":{"#) }, "$.run.facets.parent._producer is required"),
        (runEvent { $0.replacingOccurrences(of: #""rowCount":10"#, with: #""rowCount":"ten""#) }, #"$.outputs[0].outputFacets.outputStatistics.rowCount must be an integer, got a string"#),
        (runEvent { $0.replacingOccurrences(of: #""producer":"\#(producer)","schemaURL""#, with: #""producer":"no scheme","schemaURL""#) }, #"$.producer must be an absolute URI, got "no scheme""#),
        (runEvent { $0.replacingOccurrences(of: #","job":{"namespace":"ns","name":"dag.task"}"#, with: "") }, "$.job is required"),
        (clewSteps(#"{"name":"a","value":1}"#), "$.run.facets.clew_steps.steps must be an array of steps"),
        (clewSteps(#"[{"name":"a","value":1},{"value":2}]"#), "$.run.facets.clew_steps.steps[1].name must be a non-empty string"),
        (clewSteps(#"[{"name":"a"}]"#), "$.run.facets.clew_steps.steps[0].value is required"),
        (clewSteps(#"[{"name":"a","value":1,"kind":"guess"}]"#), #"$.run.facets.clew_steps.steps[0].kind must be one of "variable", "now", "side_effect", got "guess""#),
        (clewSteps(#"[{"name":"a","value":1,"source":12}]"#), "$.run.facets.clew_steps.steps[0].source must be a string (file:line)"),
        (clewSteps(#"[{"name":"a","value":1,"count":0.5}]"#), "$.run.facets.clew_steps.steps[0].count must be a whole number of at least 1, got 0.5"),
    ])
    func refused(_ text: String, _ message: String) throws {
        let got = try violation(text)
        #expect(got == message, "got \(got ?? "no violation")")
    }
}
