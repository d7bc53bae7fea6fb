"""Job analyses: what a job's nodes delivered -> the job's stored result.

base      AnalysisInput, Delivery, AnalysisError: what an analysis is given and may raise
results   the result models (LocationResult, ScanResult, FramesResult) and their GeoJSON
location  direction finding: TDOA (with a reference transmitter's clock sync) and RSS
scan      spectrum scans: detections merged across nodes
frames    custom flowgraphs: what each node delivered
worker    the Analyst: claims analysing jobs (one replica each), runs analyses in worker
          processes, stores results
"""
