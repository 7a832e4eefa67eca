"""Open an eo_mmcl embedding raster in QGIS (headless) and render bands 1-3 (run by a test).

Runs under the system Python that Debian's python3-qgis installs (QGIS 3.22 on Debian 12):
``python3 qgis_open_raster.py RASTER PNG X Y`` prints what QGIS reads as JSON.
"""

import json
import os
import sys

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsContrastEnhancement,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsMultiBandColorRenderer,
    QgsPointXY,
    QgsRaster,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

path, png, x, y = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
app = QgsApplication([], False)
app.initQgis()
layer = QgsRasterLayer(path, "embedding")
provider = layer.dataProvider()
out = {
    "qgis": Qgis.version(),
    "valid": layer.isValid(),
    "crs": layer.crs().authid(),
    "bands": layer.bandCount(),
    "data_type": int(provider.dataType(1)),
    "nodata": provider.sourceNoDataValue(1) if provider.sourceHasNoDataValue(1) else None,
    "scale": provider.bandScale(1),
    "offset": provider.bandOffset(1),
    "band_name": layer.bandName(1),
}
ident = provider.identify(QgsPointXY(x, y), QgsRaster.IdentifyFormatValue).results()
out["identify_band1"] = ident.get(1)
renderer = QgsMultiBandColorRenderer(provider, 1, 2, 3)
setters = (
    (1, renderer.setRedContrastEnhancement),
    (2, renderer.setGreenContrastEnhancement),
    (3, renderer.setBlueContrastEnhancement),
)
for band, setter in setters:
    stats = provider.bandStatistics(band)
    ce = QgsContrastEnhancement(provider.dataType(band))
    ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
    ce.setMinimumValue(stats.minimumValue)
    ce.setMaximumValue(stats.maximumValue)
    setter(ce)
layer.setRenderer(renderer)
settings = QgsMapSettings()
settings.setLayers([layer])
settings.setDestinationCrs(layer.crs())
settings.setExtent(layer.extent())
settings.setOutputSize(QSize(480, 480))
settings.setBackgroundColor(QColor(255, 255, 255))
job = QgsMapRendererParallelJob(settings)
job.start()
job.waitForFinished()
job.renderedImage().save(png, "png")
print(json.dumps(out), flush=True)
# QGIS 3.22 can crash while tearing down its application object (exitQgis and interpreter
# exit both): everything is written, so leave without the teardown.
os._exit(0)
