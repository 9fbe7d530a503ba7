"""The Office add-in manifest of ``sheetdl serve --https``: what Excel sideloads.

sheetdl's own (name, description, icons, one stable id), not xlwings Server's template:
that one is branded xlwings, adds a Hello-World ribbon button sheetdl has no function for,
and puts every function under an ``XLWINGS`` namespace. This one has no namespace of its
own, so the functions keep the names their metadata gives them, ``SHEETDL.ADAM_STEP`` and
the rest, the names xlwings Lite and ``--udf office`` workbooks use. Every URL is https
(Office loads add-ins over HTTPS only) on the server that serves it; the custom-function
runtime, script and metadata are xlwings Server's own routes.
"""
from __future__ import annotations

import struct
import zlib
from xml.sax.saxutils import quoteattr

#: sheetdl's add-in id: one for good, so Excel knows a new manifest for the same add-in
ADDIN_ID = "5d7c3f0e-2b8a-4e61-9c1d-7a4f6e2b9d35"
VERSION = "1.0.0.0"
NAME = "sheetdl"
DESCRIPTION = ("Deep learning one spreadsheet cell at a time: torch-exact optimizer steps, "
               "softmax, and whole lessons (linear, MLP, collaborative filtering, conv) as "
               "Excel functions, =SHEETDL.ADAM_STEP(...) and the rest.")
ICON_SIZES = (16, 32, 64, 80)
ICON_PATH = "/sheetdl/icon-{size}.png"
#: xlwings Server's routes the manifest names
TASKPANE, SCRIPT, METADATA = ("/taskpane.html", "/xlwings/custom-functions-code.js",
                              "/xlwings/custom-functions-meta.json")


def manifest_xml(base_url: str) -> str:
    """The manifest for a server at ``base_url`` (``https://localhost:8000``)."""
    base = base_url.rstrip("/")
    if not base.startswith("https://"):
        raise ValueError(f"{base_url}: Office loads add-ins over HTTPS only")
    url = lambda path: quoteattr(base + path)
    icon = lambda size: url(ICON_PATH.format(size=size))
    images = "\n".join(f'        <bt:Image id="Icon.{s}" DefaultValue={icon(s)} />'
                       for s in (16, 32, 80))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<OfficeApp xmlns="http://schemas.microsoft.com/office/appforoffice/1.1"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:bt="http://schemas.microsoft.com/office/officeappbasictypes/1.0"
  xmlns:ov="http://schemas.microsoft.com/office/taskpaneappversionoverrides" xsi:type="TaskPaneApp">
  <Id>{ADDIN_ID}</Id>
  <Version>{VERSION}</Version>
  <ProviderName>{NAME}</ProviderName>
  <DefaultLocale>en-US</DefaultLocale>
  <DisplayName DefaultValue="{NAME}" />
  <Description DefaultValue={quoteattr(DESCRIPTION)} />
  <IconUrl DefaultValue={icon(32)} />
  <HighResolutionIconUrl DefaultValue={icon(64)} />
  <SupportUrl DefaultValue={url(TASKPANE)} />
  <AppDomains>
    <AppDomain>{base}</AppDomain>
  </AppDomains>
  <Hosts>
    <Host Name="Workbook" />
  </Hosts>
  <Requirements>
    <Sets DefaultMinVersion="1.1">
      <Set Name="SharedRuntime" MinVersion="1.1" />
    </Sets>
  </Requirements>
  <DefaultSettings>
    <SourceLocation DefaultValue={url(TASKPANE)} />
  </DefaultSettings>
  <Permissions>ReadWriteDocument</Permissions>
  <VersionOverrides xmlns="http://schemas.microsoft.com/office/taskpaneappversionoverrides"
    xsi:type="VersionOverridesV1_0">
    <Hosts>
      <Host xsi:type="Workbook">
        <Runtimes>
          <Runtime resid="Taskpane.Url" lifetime="long" />
        </Runtimes>
        <AllFormFactors>
          <ExtensionPoint xsi:type="CustomFunctions">
            <Script>
              <SourceLocation resid="Functions.Script.Url" />
            </Script>
            <Page>
              <SourceLocation resid="Taskpane.Url" />
            </Page>
            <Metadata>
              <SourceLocation resid="Functions.Metadata.Url" />
            </Metadata>
          </ExtensionPoint>
        </AllFormFactors>
        <DesktopFormFactor>
          <FunctionFile resid="Taskpane.Url" />
          <ExtensionPoint xsi:type="PrimaryCommandSurface">
            <OfficeTab id="TabHome">
              <Group id="sheetdl.Group">
                <Label resid="Group.Label" />
                <Icon>
                  <bt:Image size="16" resid="Icon.16" />
                  <bt:Image size="32" resid="Icon.32" />
                  <bt:Image size="80" resid="Icon.80" />
                </Icon>
                <Control xsi:type="Button" id="sheetdl.Taskpane">
                  <Label resid="Taskpane.Label" />
                  <Supertip>
                    <Title resid="Taskpane.Label" />
                    <Description resid="Taskpane.Tooltip" />
                  </Supertip>
                  <Icon>
                    <bt:Image size="16" resid="Icon.16" />
                    <bt:Image size="32" resid="Icon.32" />
                    <bt:Image size="80" resid="Icon.80" />
                  </Icon>
                  <Action xsi:type="ShowTaskpane">
                    <TaskpaneId>sheetdl.Taskpane</TaskpaneId>
                    <SourceLocation resid="Taskpane.Url" />
                  </Action>
                </Control>
              </Group>
            </OfficeTab>
          </ExtensionPoint>
        </DesktopFormFactor>
      </Host>
    </Hosts>
    <Resources>
      <bt:Images>
{images}
      </bt:Images>
      <bt:Urls>
        <bt:Url id="Taskpane.Url" DefaultValue={url(TASKPANE)} />
        <bt:Url id="Functions.Script.Url" DefaultValue={url(SCRIPT)} />
        <bt:Url id="Functions.Metadata.Url" DefaultValue={url(METADATA)} />
      </bt:Urls>
      <bt:ShortStrings>
        <bt:String id="Group.Label" DefaultValue="{NAME}" />
        <bt:String id="Taskpane.Label" DefaultValue="{NAME}" />
      </bt:ShortStrings>
      <bt:LongStrings>
        <bt:String id="Taskpane.Tooltip"
          DefaultValue="The task pane of the sheetdl functions, which run while it is loaded" />
      </bt:LongStrings>
    </Resources>
  </VersionOverrides>
</OfficeApp>
"""


def icon_png(size: int) -> bytes:
    """sheetdl's icon, ``size`` pixels square: a 3×3 block of cells, the top-left one an
    input's yellow and the rest a heatmap's white-to-red, as the workbooks draw them."""
    if size not in ICON_SIZES:
        raise ValueError(f"icon sizes are {ICON_SIZES}, not {size}")
    line = max(1, size // 16)
    cell = (size - 4 * line) / 3
    grid, yellow = (89, 89, 89), (255, 242, 204)
    white, red = (255, 255, 255), (248, 105, 107)
    rows = []
    for y in range(size):
        row = bytearray([0])  # PNG filter: none
        for x in range(size):
            cx, cy = _cell_of(x, line, cell), _cell_of(y, line, cell)
            if cx is None or cy is None:
                rgb = grid
            elif (cx, cy) == (0, 0):
                rgb = yellow
            else:
                t = (cx + cy) / 4
                rgb = tuple(round(w + (r - w) * t) for w, r in zip(white, red))
            row += bytes(rgb)
        rows.append(bytes(row))
    return _png(size, size, b"".join(rows))


def _cell_of(p: int, line: int, cell: float) -> int | None:
    """Which of the three cells pixel ``p`` is in along one side, None on a grid line."""
    for i in range(3):
        start = line + i * (cell + line)
        if start <= p < start + cell:
            return i
    return None


def _png(width: int, height: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
