"""Parses a DCAT-AP document with rdflib and checks the mandatory DCAT-AP 3 properties.

Usage: check_dcat.py FILE FORMAT   (FORMAT: turtle or json-ld)
Prints a JSON summary; exits 1 naming every missing mandatory property.
"""
import json
import sys

from rdflib import Graph, Namespace, RDF

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")

MANDATORY = {
    DCAT.Catalog: [DCT.title, DCT.description, DCT.publisher],
    DCAT.Dataset: [DCT.title, DCT.description],
    DCAT.Distribution: [DCAT.accessURL],
    FOAF.Agent: [FOAF.name],
}

path, syntax = sys.argv[1], sys.argv[2]
graph = Graph()
graph.parse(path, format=syntax)

missing = []
counts = {}
for cls, properties in MANDATORY.items():
    subjects = list(graph.subjects(RDF.type, cls))
    counts[cls.split("#")[-1].split("/")[-1]] = len(subjects)
    for subject in subjects:
        for prop in properties:
            if graph.value(subject, prop) is None:
                missing.append(f"{subject} lacks {prop}")

view = next(graph.subjects(RDF.type, HYDRA.PartialCollectionView), None)
summary = {
    "triples": len(graph),
    "counts": counts,
    "total_items": int(graph.value(view, HYDRA.totalItems)) if view is not None else None,
    "next": str(graph.value(view, HYDRA.next)) if view is not None and graph.value(view, HYDRA.next) else None,
    "titles": sorted(str(o) for s in graph.subjects(RDF.type, DCAT.Dataset) for o in graph.objects(s, DCT.title)),
    "access_rights": sorted({str(o) for o in graph.objects(None, DCT.accessRights)}),
}
print(json.dumps(summary, ensure_ascii=False))
if missing:
    print("\n".join(missing), file=sys.stderr)
    sys.exit(1)
